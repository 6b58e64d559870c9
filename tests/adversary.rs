//! Insiders with real keys: a recipient forging as the sender, a sender lying to its
//! recipients, and crafted envelopes for every failure class.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::forge::{self, Auth, HeaderSpec, MessageSpec};
use rpcseal::replay::{NoReplayCheck, ReplayError, ReplayItem, ReplayStore};
use rpcseal::{
    ErrorKind, Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig,
};

use common::{opener, opener_with, T0};

struct Cast {
    alice: Identity,
    bob: Identity,
    carol: Identity,
    dave: Identity,
}

fn cast() -> Cast {
    Cast {
        alice: Identity::generate(),
        bob: Identity::generate(),
        carol: Identity::generate(),
        dave: Identity::generate(),
    }
}

fn honest_envelope(c: &Cast, mode: Mode) -> Vec<u8> {
    let to: Vec<Recipient> = [&c.bob, &c.carol, &c.dave]
        .iter()
        .map(|i| Recipient::from(i.public()))
        .collect();
    let mut s = Sealer::new(&c.alice, &to, SealerConfig::new(mode)).unwrap();
    s.seal_deterministic(b"genuine", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
        .unwrap()
}

/// The session block inside an inline envelope, as any recipient can read it.
fn inline_block(env: &[u8]) -> Vec<u8> {
    // Field 3 of the envelope: skip array header, version, suite and the 16-byte ref.
    // 0x9a, 0x03, 0x01, 0xc4 0x10 <16 bytes>, then a bin header.
    let rest = &env[3 + 2 + 16..];
    let (len, hdr) = match rest[0] {
        0xc4 => (rest[1] as usize, 2),
        0xc5 => (u16::from_be_bytes([rest[1], rest[2]]) as usize, 3),
        _ => panic!("expected an inline block"),
    };
    rest[hdr..hdr + len].to_vec()
}

#[test]
fn a_recipient_cannot_forge_mac_mode_messages_to_the_others() {
    let c = cast();
    let env = honest_envelope(&c, Mode::Mac);
    let block = inline_block(&env);
    let (_, hh) = forge::block_header(&block);
    // Bob (recipient 0) unwraps what he legitimately holds: EK and his own MAC key.
    let (ek, mk_bob) = forge::unwrap_as(&block, 0, &forge::identity_x25519(&c.bob));
    let ek = ek.unwrap();
    let meta = Metadata::new();
    let forged = forge::message(&MessageSpec {
        version: 3,
        suite: 1,
        session_ref: forge::session_ref(&hh),
        header_hash: hh,
        block: Some(&block),
        seq: 7,
        timestamp: T0,
        nonce: [9; 16],
        metadata: &meta,
        payload: b"pay eve 1000000",
        ek: Some(&ek),
        auth: Auth::Mac(&[mk_bob, None, None]),
    });
    // The forgery is well made: Bob himself would accept it (it is his own tag) ...
    assert_eq!(
        opener(&c.bob, &c.alice)
            .open_at(&forged, T0)
            .unwrap()
            .payload,
        b"pay eve 1000000"
    );
    // ... and the other recipients do not.
    for other in [&c.carol, &c.dave] {
        assert_eq!(
            opener(other, &c.alice)
                .open_at(&forged, T0)
                .unwrap_err()
                .kind(),
            ErrorKind::BadAuthenticator
        );
    }
}

#[test]
fn a_recipient_cannot_forge_signed_mode_messages_to_the_others() {
    let c = cast();
    let env = honest_envelope(&c, Mode::Signed);
    let block = inline_block(&env);
    let (_, hh) = forge::block_header(&block);
    let (ek, _) = forge::unwrap_as(&block, 0, &forge::identity_x25519(&c.bob));
    let ek = ek.unwrap();
    let meta = Metadata::new();
    let bobs_key = SigningKey::from_bytes(&[0x0b; 32]);
    // Bob encrypts under the session's EK and signs with a key of his own.
    let forged = forge::message(&MessageSpec {
        version: 3,
        suite: 1,
        session_ref: forge::session_ref(&hh),
        header_hash: hh,
        block: Some(&block),
        seq: 7,
        timestamp: T0,
        nonce: [9; 16],
        metadata: &meta,
        payload: b"pay eve",
        ek: Some(&ek),
        auth: Auth::Sign(&bobs_key),
    });
    assert_eq!(
        opener(&c.carol, &c.alice)
            .open_at(&forged, T0)
            .unwrap_err()
            .kind(),
        ErrorKind::BadAuthenticator
    );
    // Bob makes his own session block naming Alice as the sender: only Alice can sign it.
    let mut h = HeaderSpec::honest(
        Mode::Signed,
        &c.alice,
        [1; 16],
        (T0, T0 + 600),
        Some(&bobs_key),
        Some(&ek),
    );
    h.sender = c.alice.key_id();
    let hb = h.encode();
    let hh = forge::header_hash(&hb);
    let wrap = forge::wrap(
        &c.carol.public().x25519_bytes(),
        &hh,
        0,
        &ek,
        &mut UnwrapErr(SysRng),
    );
    let entries = [(c.carol.public().recipient_key_id(), wrap.0, wrap.1)];
    let fake_block = forge::block(&c.bob, &hb, &entries);
    let forged = forge::message(&MessageSpec {
        version: 3,
        suite: 1,
        session_ref: forge::session_ref(&hh),
        header_hash: hh,
        block: Some(&fake_block),
        seq: 0,
        timestamp: T0,
        nonce: [9; 16],
        metadata: &meta,
        payload: b"pay eve",
        ek: Some(&ek),
        auth: Auth::Sign(&bobs_key),
    });
    assert_eq!(
        opener(&c.carol, &c.alice)
            .open_at(&forged, T0)
            .unwrap_err()
            .kind(),
        ErrorKind::BadSignature
    );
    // The same block signed by Alice opens: the forgery failed for the right reason.
    let real_block = forge::block(&c.alice, &hb, &entries);
    let genuine = forge::message(&MessageSpec {
        block: Some(&real_block),
        ..MessageSpec {
            version: 3,
            suite: 1,
            session_ref: forge::session_ref(&hh),
            header_hash: hh,
            block: None,
            seq: 0,
            timestamp: T0,
            nonce: [9; 16],
            metadata: &meta,
            payload: b"pay eve",
            ek: Some(&ek),
            auth: Auth::Sign(&bobs_key),
        }
    });
    assert_eq!(
        opener(&c.carol, &c.alice)
            .open_at(&genuine, T0)
            .unwrap()
            .payload,
        b"pay eve"
    );
}

/// A crafted session from a (trusted but malicious) sender, for the failure classes an
/// honest sealer never produces.
struct Crafted {
    header: HeaderSpec,
    ek: [u8; 32],
    signing: SigningKey,
}

impl Crafted {
    fn new(alice: &Identity, mode: Mode) -> Crafted {
        let signing = SigningKey::from_bytes(&[0x5e; 32]);
        let ek = [0xe4; 32];
        let header = HeaderSpec::honest(
            mode,
            alice,
            [2; 16],
            (T0, T0 + 600),
            Some(&signing),
            Some(&ek),
        );
        Crafted {
            header,
            ek,
            signing,
        }
    }

    /// A block to `to` with each wrap's plaintext given (index order), and an envelope.
    fn envelope(
        &self,
        alice: &Identity,
        to: &[&Identity],
        plaintexts: &[Vec<u8>],
        seq: u64,
    ) -> Vec<u8> {
        let hb = self.header.encode();
        let hh = forge::header_hash(&hb);
        let entries: Vec<_> = to
            .iter()
            .zip(plaintexts)
            .enumerate()
            .map(|(i, (r, pt))| {
                let (enc, w) = forge::wrap(
                    &r.public().x25519_bytes(),
                    &hh,
                    i as u32,
                    pt,
                    &mut UnwrapErr(SysRng),
                );
                (r.public().recipient_key_id(), enc, w)
            })
            .collect();
        let block = forge::block(alice, &hb, &entries);
        self.message(&block, &hh, seq)
    }

    fn message(&self, block: &[u8], hh: &[u8; 32], seq: u64) -> Vec<u8> {
        let meta = Metadata::new();
        forge::message(&MessageSpec {
            version: 3,
            suite: 1,
            session_ref: forge::session_ref(hh),
            header_hash: *hh,
            block: Some(block),
            seq,
            timestamp: T0,
            nonce: [3; 16],
            metadata: &meta,
            payload: b"crafted",
            ek: Some(&self.ek),
            auth: Auth::Sign(&self.signing),
        })
    }
}

#[test]
fn key_commitment_stops_a_sender_giving_recipients_different_keys() {
    let c = cast();
    let crafted = Crafted::new(&c.alice, Mode::Signed);
    // The header commits to EK; Bob is given EK, Carol a different key.
    let env = crafted.envelope(
        &c.alice,
        &[&c.bob, &c.carol],
        &[crafted.ek.to_vec(), vec![0x99; 32]],
        0,
    );
    assert_eq!(
        opener(&c.bob, &c.alice).open_at(&env, T0).unwrap().payload,
        b"crafted"
    );
    assert_eq!(
        opener(&c.carol, &c.alice)
            .open_at(&env, T0)
            .unwrap_err()
            .kind(),
        ErrorKind::KeyCommitment
    );
}

#[test]
fn crafted_envelopes_reach_every_failure_class() {
    let c = cast();
    let mut seen = BTreeSet::new();
    let mut expect = |what: &str, got: Result<rpcseal::Opened, rpcseal::Error>, kind: ErrorKind| {
        let e = got.expect_err(what);
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(!e.to_string().is_empty());
        seen.insert(kind.as_str());
    };
    let bob_opens = |env: &[u8]| opener(&c.bob, &c.alice).open_at(env, T0);
    let crafted = Crafted::new(&c.alice, Mode::Signed);
    let ek = crafted.ek.to_vec();
    let good = crafted.envelope(&c.alice, &[&c.bob], std::slice::from_ref(&ek), 0);
    assert_eq!(bob_opens(&good).unwrap().payload, b"crafted");

    expect(
        "truncated",
        bob_opens(&good[..good.len() - 1]),
        ErrorKind::Malformed,
    );
    expect(
        "huge",
        Opener::builder()
            .identity(&c.bob)
            .trust(c.alice.public())
            .policy(Policy::default().max_payload(4))
            .build()
            .unwrap()
            .open_at(&good, T0),
        ErrorKind::LimitExceeded,
    );
    let mut v4 = good.clone();
    v4[1] = 4;
    expect("version 4", bob_opens(&v4), ErrorKind::UnsupportedVersion);
    let mut s99 = good.clone();
    s99[2] = 99;
    expect("suite 99", bob_opens(&s99), ErrorKind::UnknownSuite);
    expect(
        "suite not allowed",
        Opener::builder()
            .identity(&c.bob)
            .trust(c.alice.public())
            .policy(Policy::default().suites(&[]))
            .build()
            .unwrap()
            .open_at(&good, T0),
        ErrorKind::SuiteNotAllowed,
    );
    expect(
        "mode not allowed",
        Opener::builder()
            .identity(&c.bob)
            .trust(c.alice.public())
            .policy(Policy::default().modes(&[Mode::Mac]))
            .build()
            .unwrap()
            .open_at(&good, T0),
        ErrorKind::ModeNotAllowed,
    );
    expect(
        "not for us",
        opener(&c.carol, &c.alice).open_at(&good, T0),
        ErrorKind::NotForUs,
    );
    expect(
        "untrusted",
        opener(&c.bob, &c.carol).open_at(&good, T0),
        ErrorKind::UntrustedSender,
    );
    {
        // The block signed by someone else than the sender it names.
        let hb = crafted.header.encode();
        let hh = forge::header_hash(&hb);
        let (enc, w) = forge::wrap(
            &c.bob.public().x25519_bytes(),
            &hh,
            0,
            &ek,
            &mut UnwrapErr(SysRng),
        );
        let block = forge::block(
            &c.carol,
            &hb,
            &[(c.bob.public().recipient_key_id(), enc, w)],
        );
        expect(
            "bad signature",
            bob_opens(&crafted.message(&block, &hh, 0)),
            ErrorKind::BadSignature,
        );
        // An all-zero key share, signed by the real sender.
        let (_, w) = forge::wrap(
            &c.bob.public().x25519_bytes(),
            &hh,
            0,
            &ek,
            &mut UnwrapErr(SysRng),
        );
        let block = forge::block(
            &c.alice,
            &hb,
            &[(c.bob.public().recipient_key_id(), [0; 32], w)],
        );
        expect(
            "all-zero share",
            bob_opens(&crafted.message(&block, &hh, 0)),
            ErrorKind::BadWrap,
        );
        // A wrap made for another index.
        let (enc, w) = forge::wrap(
            &c.bob.public().x25519_bytes(),
            &hh,
            1,
            &ek,
            &mut UnwrapErr(SysRng),
        );
        let block = forge::block(
            &c.alice,
            &hb,
            &[(c.bob.public().recipient_key_id(), enc, w)],
        );
        expect(
            "wrap for another index",
            bob_opens(&crafted.message(&block, &hh, 0)),
            ErrorKind::BadWrap,
        );
        // Bob listed twice.
        let (enc, w) = forge::wrap(
            &c.bob.public().x25519_bytes(),
            &hh,
            0,
            &ek,
            &mut UnwrapErr(SysRng),
        );
        let id = c.bob.public().recipient_key_id();
        let block = forge::block(&c.alice, &hb, &[(id, enc, w.clone()), (id, enc, w)]);
        expect(
            "duplicate recipient",
            bob_opens(&crafted.message(&block, &hh, 0)),
            ErrorKind::Malformed,
        );
    }
    expect(
        "key commitment",
        bob_opens(&crafted.envelope(&c.alice, &[&c.bob], &[vec![1; 32]], 0)),
        ErrorKind::KeyCommitment,
    );
    {
        let to = [Recipient::from(c.bob.public())];
        let mut s = Sealer::new(
            &c.alice,
            &to,
            SealerConfig::new(Mode::Mac).inline(Inline::Never),
        )
        .unwrap();
        let env = s
            .seal_deterministic(b"x", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
            .unwrap();
        expect(
            "unknown session",
            bob_opens(&env),
            ErrorKind::UnknownSession,
        );
    }
    let mut tampered = good.clone();
    let at = tampered.len() - 70;
    tampered[at] ^= 0x20;
    expect(
        "tampered ciphertext",
        bob_opens(&tampered),
        ErrorKind::BadAuthenticator,
    );
    expect(
        "not yet valid",
        opener(&c.bob, &c.alice).open_at(&good, T0 - 1000),
        ErrorKind::NotYetValid,
    );
    expect(
        "expired",
        opener(&c.bob, &c.alice).open_at(&good, T0 + 10_000),
        ErrorKind::Expired,
    );
    expect(
        "clock skew",
        opener(&c.bob, &c.alice).open_at(&good, T0 + 500),
        ErrorKind::ClockSkew,
    );
    {
        let mut limited = Crafted::new(&c.alice, Mode::Signed);
        limited.header.max_messages = 2;
        expect(
            "past the message limit",
            bob_opens(&limited.envelope(&c.alice, &[&c.bob], std::slice::from_ref(&ek), 2)),
            ErrorKind::SessionLimit,
        );
    }
    {
        struct Down;
        impl ReplayStore for Down {
            fn check(&self, _: &ReplayItem, _: u64) -> Result<(), ReplayError> {
                Err(ReplayError::Unavailable {
                    reason: "connection refused".into(),
                })
            }
            fn check_and_mark(&self, i: &ReplayItem, n: u64) -> Result<(), ReplayError> {
                self.check(i, n)
            }
        }
        expect(
            "replay store down",
            opener_with(&c.bob, &c.alice, Arc::new(Down)).open_at(&good, T0),
            ErrorKind::ReplayUnavailable,
        );
    }
    {
        let o = opener(&c.bob, &c.alice);
        o.open_at(&good, T0).unwrap();
        expect("replayed", o.open_at(&good, T0), ErrorKind::Replayed);
    }
    expect(
        "legacy v2 without the opt-in",
        opener(&c.bob, &c.alice).open_at(rpcseal::seal_legacy_v2("{}").unwrap().as_bytes(), T0),
        ErrorKind::LegacyNotAllowed,
    );
    {
        let o = opener(&c.bob, &c.alice);
        o.revoke(c.alice.key_id());
        expect("revoked sender", o.open_at(&good, T0), ErrorKind::Revoked);
    }
    {
        // Strict order: sequence number 1 of a session before 0.
        let strict = Opener::builder()
            .identity(&c.bob)
            .trust(c.alice.public())
            .policy(Policy::default().strict_order())
            .build()
            .unwrap();
        let mut s = Sealer::new(
            &c.alice,
            &[Recipient::from(c.bob.public())],
            SealerConfig::new(Mode::Mac),
        )
        .unwrap();
        let first = s
            .seal_deterministic(b"0", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
            .unwrap();
        let second = s
            .seal_deterministic(b"1", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
            .unwrap();
        expect(
            "strict order, 1 before 0",
            strict.open_at(&second, T0),
            ErrorKind::OutOfOrder,
        );
        strict.open_at(&first, T0).unwrap();
        strict.open_at(&second, T0).unwrap();
    }
    let all: BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(seen, all, "every error category is reached by a test");
    let _ = NoReplayCheck;
}
