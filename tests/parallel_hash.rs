//! The message hash on a second thread (`SealerConfig::parallel_hash_from`,
//! `Policy::parallel_hash_from`): the same envelopes, the same verdicts, the same errors and
//! the same state afterwards as without it.

use std::sync::Arc;

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::forge::{self, Auth, MessageSpec};
use rpcseal::replay::MemoryReplayStore;
use rpcseal::{
    ErrorKind, Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig,
};

const T0: u64 = 1_800_000_000;
/// The piece the sealer hands to the hashing thread (src/parallel.rs).
const PIECE: usize = 32 * 1024;
const MODES: [Mode; 3] = [Mode::Signed, Mode::Mac, Mode::SignOnly];

/// SplitMix64, so that two sealers fed the same seed make the same sessions and nonces.
/// Not a cryptographic generator, whatever the marker trait says: tests only.
struct Script(u64);

impl Script {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}
impl rand_core::TryRng for Script {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Script {}

/// Payload lengths around every piece boundary, and a little over 1 MiB.
fn lengths() -> Vec<usize> {
    vec![
        0,
        1,
        PIECE - 1,
        PIECE,
        PIECE + 1,
        2 * PIECE + 17,
        (1 << 20) + 5,
    ]
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Script(seed).fill_bytes(&mut v);
    v
}

fn meta() -> Metadata {
    let mut m = Metadata::new();
    m.insert("method".into(), "blob.put".into());
    m
}

fn sealer(from: &Identity, to: &Identity, mode: Mode, parallel: Option<usize>) -> Sealer {
    Sealer::new(
        from,
        &[Recipient::from(to.public())],
        SealerConfig::new(mode)
            .inline(Inline::FirstMessage)
            .parallel_hash_from(parallel),
    )
    .unwrap()
}

/// An opener with a replay store of its own.
fn opener(me: &Identity, trust: &Identity, parallel: Option<usize>) -> Opener {
    Opener::builder()
        .identity(me)
        .trust(trust.public())
        .replay_store(Arc::new(MemoryReplayStore::default()))
        .policy(Policy::default().parallel_hash_from(parallel))
        .build()
        .unwrap()
}

/// The outcome as a comparable value: the payload, or the error's kind and sentence.
fn outcome(r: Result<rpcseal::Opened, rpcseal::Error>) -> Result<Vec<u8>, (ErrorKind, String)> {
    r.map(|o| o.payload).map_err(|e| (e.kind(), e.to_string()))
}

#[test]
fn the_knob_seals_the_same_bytes() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    for mode in MODES {
        for knob in [Some(0), Some(PIECE), Some(usize::MAX)] {
            let mut plain = sealer(&alice, &bob, mode, None);
            let mut par = sealer(&alice, &bob, mode, knob);
            let (mut r1, mut r2) = (Script(7), Script(7));
            for (i, len) in lengths().into_iter().enumerate() {
                let p = payload(len, i as u64);
                let a = plain.seal_deterministic(&p, &meta(), T0, &mut r1).unwrap();
                let b = par.seal_deterministic(&p, &meta(), T0, &mut r2).unwrap();
                assert!(a == b, "{mode}, knob {knob:?}, length {len}");
            }
        }
    }
}

#[test]
fn the_knob_opens_what_the_sequential_path_opens() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    for mode in MODES {
        let mut s = sealer(&alice, &bob, mode, Some(0));
        let plain = opener(&bob, &alice, None);
        let par = opener(&bob, &alice, Some(0));
        for (i, len) in lengths().into_iter().enumerate() {
            let p = payload(len, i as u64);
            let env = s
                .seal_deterministic(&p, &meta(), T0, &mut UnwrapErr(SysRng))
                .unwrap();
            let a = plain.open_at(&env, T0).unwrap();
            let b = par.open_at(&env, T0).unwrap();
            assert_eq!(a.payload, p, "{mode}, length {len}");
            assert_eq!(b.payload, p, "{mode}, length {len}");
            assert_eq!(a.metadata, b.metadata);
            assert_eq!((a.seq, a.session), (b.seq, b.session));
            // Each opener marked it: the second open is a replay on both.
            assert_eq!(
                par.open_at(&env, T0).unwrap_err().kind(),
                ErrorKind::Replayed
            );
        }
    }
}

/// Where the parts of a steady-state envelope to one recipient lie: (ciphertext start,
/// tag start, authenticator start).
fn layout(env: &[u8], payload_len: usize, mode: Mode) -> (usize, usize, usize) {
    let auth_len = if mode == Mode::Mac { 16 } else { 64 };
    let auth = env.len() - auth_len;
    assert_eq!(
        env[auth - 2..auth],
        [0xc4, auth_len as u8],
        "bin8 authenticator"
    );
    let tag_len = if mode.encrypts() { 16 } else { 0 };
    let tag = auth - 2 - tag_len;
    let ct = tag - payload_len;
    assert_eq!(env[ct - 5], 0xc6, "bin32 body");
    (ct, tag, auth)
}

/// A flipped bit anywhere in a large envelope (the fields before the body, the ciphertext
/// around every piece boundary, the AEAD tag, the authenticator) gets the same error from
/// an opener with the knob as from one without, and changes neither's state: the session
/// stays uncached, nothing is marked as seen, and the original opens afterwards.
#[test]
fn a_flipped_bit_anywhere_is_rejected_alike() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let len = 4 * PIECE + 17;
    for mode in MODES {
        // Inline::Always: every envelope carries its block, so a failure would show as a
        // cached session.
        let mut s = Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(mode),
        )
        .unwrap();
        let p = payload(len, 99);
        let env = s
            .seal_deterministic(&p, &meta(), T0, &mut UnwrapErr(SysRng))
            .unwrap();
        let (ct, tag, auth) = layout(&env, len, mode);
        let mut positions: Vec<usize> = (0..ct).step_by(7).collect();
        for k in 0..=4 {
            let b = ct + k * PIECE;
            positions.extend([b.saturating_sub(1), b, b + 1]);
        }
        positions.extend((ct..tag).step_by(4099));
        positions.extend(tag..auth);
        positions.extend([auth, auth + 1, env.len() - 1]);
        positions.retain(|&i| i < env.len());
        let plain = opener(&bob, &alice, None);
        let par = opener(&bob, &alice, Some(0));
        for &i in &positions {
            for bit in [0, 5] {
                let mut bad = env.clone();
                bad[i] ^= 1 << bit;
                let a = outcome(plain.open_at(&bad, T0));
                let b = outcome(par.open_at(&bad, T0));
                assert_eq!(a, b, "{mode}: byte {i} bit {bit}");
                // The ciphertext, the tag and the authenticator's bytes (not its header).
                if i >= ct && !(auth - 2..auth).contains(&i) {
                    assert_eq!(
                        a.map(|_| ()).unwrap_err().0,
                        ErrorKind::BadAuthenticator,
                        "{mode}: byte {i} bit {bit}"
                    );
                }
            }
        }
        for o in [&plain, &par] {
            assert_eq!(o.cached_sessions(), 0, "{mode}");
            assert_eq!(o.stats().messages_opened, 0, "{mode}");
            // Not marked as seen: the original opens, once.
            assert_eq!(o.open_at(&env, T0).unwrap().payload, p, "{mode}");
            assert_eq!(o.open_at(&env, T0).unwrap_err().kind(), ErrorKind::Replayed);
        }
    }
}

/// A MAC-mode recipient knows EK and its own MAC key, so it can make an envelope whose
/// authenticator verifies for itself but whose AEAD tag does not. Spec §8 step 11 rejects
/// it; with the knob the authenticator and the AEAD are checked at once, and the outcome
/// must be the same: BadAuthenticator, nothing marked, nothing cached.
#[test]
fn a_good_authenticator_over_a_bad_aead_tag_is_rejected_alike() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac),
    )
    .unwrap();
    let honest = s
        .seal_deterministic(b"x", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
        .unwrap();
    // The inline block: field 3, after the array header, version, suite and the 16-byte
    // session reference; a block this size has a bin16 header.
    let rest = &honest[3 + 2 + 16..];
    assert_eq!(rest[0], 0xc5);
    let block = rest[3..3 + usize::from(u16::from_be_bytes([rest[1], rest[2]]))].to_vec();
    let (_, hh) = forge::block_header(&block);
    let (ek, mk) = forge::unwrap_as(&block, 0, &forge::identity_x25519(&bob));
    let (ek, mk) = (ek.unwrap(), mk.unwrap());
    let p = payload((1 << 20) + 5, 3);
    let meta = Metadata::new();
    let spec = |seq: u64, body: &[u8], ek: Option<&[u8; 32]>| {
        forge::message(&MessageSpec {
            version: 3,
            suite: 1,
            session_ref: forge::session_ref(&hh),
            header_hash: hh,
            block: Some(&block),
            seq,
            timestamp: T0,
            nonce: [seq as u8; 16],
            metadata: &meta,
            payload: body,
            ek,
            auth: Auth::Mac(&[Some(mk)]),
        })
    };
    // The genuine encryption of `p`, to take its ciphertext and tag apart.
    let good = spec(5, &p, Some(&ek));
    let (ct, tag, _) = layout(&good, p.len(), Mode::Mac);
    for flip in [ct, ct + PIECE, tag - 1, tag, tag + 15] {
        let mut body = good[ct..tag + 16].to_vec();
        body[flip - ct] ^= 0x80;
        // The body as is (no encryption): a good MAC over a bad AEAD tag.
        let forged = spec(5, &body, None);
        let plain = opener(&bob, &alice, None);
        let par = opener(&bob, &alice, Some(0));
        let a = outcome(plain.open_at(&forged, T0));
        let b = outcome(par.open_at(&forged, T0));
        assert_eq!(a, b, "flip at {flip}");
        let (kind, sentence) = a.unwrap_err();
        assert_eq!(kind, ErrorKind::BadAuthenticator);
        assert!(sentence.contains("AEAD"), "{sentence}");
        for o in [&plain, &par] {
            assert_eq!(o.cached_sessions(), 0);
            assert_eq!(o.stats().messages_opened, 0);
            // Same sequence number and nonce, genuine body: not a replay.
            assert_eq!(o.open_at(&good, T0).unwrap().payload, p);
        }
    }
}
