//! `Opener::open_batch`: results in input order, identical to sequential `open` calls,
//! with the per-message signatures checked by batch verification (issue 7).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::replay::{ReplayError, ReplayItem, ReplayStore};
use rpcseal::{
    ErrorKind, Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig,
};

const T0: u64 = 1_800_000_000;

/// A replay store that remembers every accepted (session, seq): enough to see the order in
/// which the opener marks messages.
#[derive(Default)]
struct Recording {
    seen: Mutex<HashSet<([u8; 16], u64)>>,
    marked: Mutex<Vec<u64>>,
}

impl ReplayStore for Recording {
    fn check(&self, item: &ReplayItem, _: u64) -> Result<(), ReplayError> {
        if self
            .seen
            .lock()
            .unwrap()
            .contains(&(item.session_id, item.seq))
        {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }
    fn check_and_mark(&self, item: &ReplayItem, _: u64) -> Result<(), ReplayError> {
        if !self
            .seen
            .lock()
            .unwrap()
            .insert((item.session_id, item.seq))
        {
            return Err(ReplayError::Replayed);
        }
        self.marked.lock().unwrap().push(item.seq);
        Ok(())
    }
}

fn meta() -> Metadata {
    let mut m = Metadata::new();
    m.insert("method".into(), "orders.create".into());
    m
}

struct Setup {
    sealer: Sealer,
    opener: Opener,
    store: Arc<Recording>,
}

fn setup(mode: Mode, inline: Inline) -> Setup {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let store = Arc::new(Recording::default());
    Setup {
        sealer: Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(mode).inline(inline),
        )
        .unwrap(),
        opener: Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .replay_store(store.clone())
            .build()
            .unwrap(),
        store,
    }
}

fn seal(s: &mut Sealer, i: usize) -> Vec<u8> {
    s.seal_deterministic(
        format!("payload {i}").as_bytes(),
        &meta(),
        T0,
        &mut UnwrapErr(SysRng),
    )
    .unwrap()
}

fn kinds(results: &[Result<rpcseal::Opened, rpcseal::Error>]) -> Vec<Option<ErrorKind>> {
    results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.kind()))
        .collect()
}

#[test]
fn all_good_in_every_mode_and_inline_choice() {
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        for inline in [Inline::Always, Inline::FirstMessage] {
            let mut s = setup(mode, inline);
            let envs: Vec<Vec<u8>> = (0..8).map(|i| seal(&mut s.sealer, i)).collect();
            let refs: Vec<&[u8]> = envs.iter().map(Vec::as_slice).collect();
            let out = s.opener.open_batch_at(&refs, T0);
            assert_eq!(out.len(), 8);
            for (i, r) in out.iter().enumerate() {
                let o = r
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{mode} {inline:?} #{i}: {e}"));
                assert_eq!(o.payload, format!("payload {i}").as_bytes());
                assert_eq!(o.seq, i as u64);
                assert_eq!(o.metadata, meta());
            }
            assert_eq!(
                *s.store.marked.lock().unwrap(),
                (0..8).collect::<Vec<u64>>()
            );
            let st = s.opener.stats();
            assert_eq!(st.sessions_established, 1, "{mode} {inline:?}");
            assert_eq!(st.messages_opened, 8);
            if mode.signs() {
                assert_eq!(st.message_signatures_checked, 8);
            }
            // The session is cached for later single opens.
            assert_eq!(s.opener.cached_sessions(), 1);
            let next = seal(&mut s.sealer, 8);
            assert_eq!(s.opener.open_at(&next, T0).unwrap().seq, 8);
        }
    }
}

#[test]
fn one_tampered_envelope_in_the_middle_is_the_only_one_rejected() {
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        let mut s = setup(mode, Inline::FirstMessage);
        let mut envs: Vec<Vec<u8>> = (0..7).map(|i| seal(&mut s.sealer, i)).collect();
        // Flip a bit of the signature or MAC list (last byte) of envelope 3, and a payload
        // byte of envelope 5 (covered by the authenticator in every mode).
        *envs[3].last_mut().unwrap() ^= 1;
        let at = envs[5].len() - 80;
        envs[5][at] ^= 0x40;
        let refs: Vec<&[u8]> = envs.iter().map(Vec::as_slice).collect();
        let out = s.opener.open_batch_at(&refs, T0);
        let k = kinds(&out);
        let bad = Some(ErrorKind::BadAuthenticator);
        assert_eq!(k, vec![None, None, None, bad, None, bad, None], "{mode}");
        // Nothing was marked for the rejected ones: the originals still open.
        assert_eq!(*s.store.marked.lock().unwrap(), vec![0, 1, 2, 4, 6]);
    }
}

#[test]
fn a_duplicate_inside_one_batch_is_replayed() {
    for mode in [Mode::Signed, Mode::Mac] {
        let mut s = setup(mode, Inline::Always);
        let a = seal(&mut s.sealer, 0);
        let b = seal(&mut s.sealer, 1);
        let out = s.opener.open_batch_at(&[&a, &b, &a, &b, &b], T0);
        let r = Some(ErrorKind::Replayed);
        assert_eq!(kinds(&out), vec![None, None, r, r, r], "{mode}");
        // And against what was accepted before the batch.
        let c = seal(&mut s.sealer, 2);
        let out = s.opener.open_batch_at(&[&a, &c], T0);
        assert_eq!(kinds(&out), vec![r, None]);
    }
}

#[test]
fn a_mix_of_modes_senders_and_failures_matches_sequential_opens() {
    let alice = Identity::generate();
    let carol = Identity::generate();
    let bob = Identity::generate();
    let to = [Recipient::from(bob.public())];
    let mut sealers: Vec<Sealer> = [
        (&alice, Mode::Signed),
        (&alice, Mode::Mac),
        (&carol, Mode::SignOnly),
        (&carol, Mode::Signed),
    ]
    .into_iter()
    .map(|(who, mode)| {
        Sealer::new(
            who,
            &to,
            SealerConfig::new(mode).inline(Inline::FirstMessage),
        )
        .unwrap()
    })
    .collect();
    let mut envs = Vec::new();
    for round in 0..3 {
        for s in sealers.iter_mut() {
            envs.push(seal(s, round));
        }
    }
    // Tamper one signed-mode envelope, and add garbage and a duplicate.
    let last = envs[7].len() - 1;
    envs[7][last] ^= 0x80;
    envs.push(b"not an envelope".to_vec());
    envs.push(envs[4].clone());
    let build = || {
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .trust(carol.public())
            .replay_store(Arc::new(Recording::default()))
            .build()
            .unwrap()
    };
    let refs: Vec<&[u8]> = envs.iter().map(Vec::as_slice).collect();
    let batched = build().open_batch_at(&refs, T0);
    let one_by_one = build();
    let sequential: Vec<_> = refs.iter().map(|e| one_by_one.open_at(e, T0)).collect();
    assert_eq!(kinds(&batched), kinds(&sequential));
    assert_eq!(batched.iter().filter(|r| r.is_err()).count(), 3);
    for (b, s) in batched.iter().zip(&sequential) {
        if let (Ok(b), Ok(s)) = (b, s) {
            assert_eq!(b.payload, s.payload);
            assert_eq!(b.sender, s.sender);
            assert_eq!(b.session, s.session);
        }
    }
}

#[test]
fn a_by_reference_envelope_whose_session_carrier_failed_is_unknown_session() {
    let mut s = setup(Mode::Signed, Inline::FirstMessage);
    let mut first = seal(&mut s.sealer, 0);
    let second = seal(&mut s.sealer, 1);
    *first.last_mut().unwrap() ^= 1;
    let out = s.opener.open_batch_at(&[&first, &second], T0);
    assert_eq!(
        kinds(&out),
        vec![
            Some(ErrorKind::BadAuthenticator),
            Some(ErrorKind::UnknownSession)
        ]
    );
    assert_eq!(s.opener.cached_sessions(), 0);
}

#[test]
fn an_empty_batch_is_empty() {
    let s = setup(Mode::Signed, Inline::Always);
    assert!(s.opener.open_batch(&[]).is_empty());
}

/// Issue 14 item 2: a signature with R' = R + T2 (T2 of order 2) satisfies a random-
/// coefficient batch equation whenever the coefficient is even, so a batch verifier accepted
/// it in about one batch in two while `open` rejected it. `open_batch` now applies the
/// strict rule to every signature: rejected in every batch (the vector
/// `signatures.json::message-signature-r-plus-order-2-point`, beside an honest message).
#[test]
fn torsion_signatures_are_rejected_in_every_batch() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/v3/negative");
    let load = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let sigs = load("signatures.json");
    let replay = load("replay.json");
    let envelope = |file: &serde_json::Value, case: &str| -> Vec<u8> {
        let c = file["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == case)
            .unwrap();
        hex::decode(c["steps"][0]["envelope"].as_str().unwrap()).unwrap()
    };
    let torsion = envelope(&sigs, "message-signature-r-plus-order-2-point");
    let honest = envelope(&replay, "replayed-envelope");
    let key = |name: &str, field: &str| -> [u8; 32] {
        hex::decode(sigs["keys"][name][field].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let bob = Identity::from_parts(&key("bob", "ed25519_seed"), &key("bob", "x25519_secret"));
    let alice =
        rpcseal::PublicIdentity::parse(sigs["keys"]["alice"]["public_string"].as_str().unwrap())
            .unwrap();
    let t0 = 1_800_000_000;
    for round in 0..40 {
        let opener = Opener::builder()
            .identity(&bob)
            .trust(&alice)
            .build()
            .unwrap();
        let out = opener.open_batch_at(&[&torsion, &honest, &torsion], t0);
        assert_eq!(
            out[0].as_ref().err().map(|e| e.kind()),
            Some(ErrorKind::BadAuthenticator),
            "round {round}"
        );
        assert!(out[1].is_ok(), "round {round}: {:?}", out[1]);
        assert_eq!(
            out[2].as_ref().err().map(|e| e.kind()),
            Some(ErrorKind::BadAuthenticator),
            "round {round}"
        );
        assert_eq!(
            opener.open_at(&torsion, t0).err().map(|e| e.kind()),
            Some(ErrorKind::BadAuthenticator)
        );
    }
}
