//! Measuring sticks shared by `rpcseal bench` (rpcseal-cli/src/cli/bench.rs) and the
//! criterion benches (../benches/envelope.rs and replay.rs include this one file with
//! `#[path]`), so that the two cannot drift: the hand-written floor, the hybrid
//! HPKE + Ed25519 peer, and the replay store's scattered sessions and memory-latency floor.
//! Public API of the library only.

use std::sync::atomic::{AtomicU64, Ordering};

use rpcseal::replay::{ReplayError, ReplayItem, ReplayStore};

/// A replay store for measuring the replay check *inside* `Opener::open` with many tracked
/// sessions while the opener itself sees one session.
///
/// Each message the opener hands over is re-keyed to one of `sessions` synthetic sessions
/// of the inner store, visited in a scattered round-robin (each session once per round,
/// its sequence number one higher per round), so that every message lands on a session
/// whose state is not in the CPU caches, as on a receiver with that many active senders.
/// The opener's read-only check and its mark of the same message map to the same session:
/// the mapping advances only on a successful mark.
pub struct ScatteredSessions<S> {
    inner: S,
    sessions: u64,
    sender: [u8; 16],
    next: AtomicU64,
}

impl<S: ReplayStore> ScatteredSessions<S> {
    /// Wraps `inner`, which [`ScatteredSessions::preload`] fills.
    pub fn new(inner: S, sessions: u64) -> Self {
        ScatteredSessions {
            inner,
            sessions: sessions.max(1),
            sender: [0xa5; 16],
            next: AtomicU64::new(0),
        }
    }

    /// Uses another synthetic sender key id, so that several wrappers can share one inner
    /// store without sharing sessions.
    pub fn with_sender(mut self, sender: u8) -> Self {
        self.sender = [sender; 16];
        self
    }

    /// The synthetic item for call `n` (from 0), with the timing fields of `item`.
    fn map(&self, item: &ReplayItem, n: u64) -> ReplayItem {
        let s = self.sessions;
        // Odd and not a multiple of 5: coprime with the powers of ten used as session
        // counts, so a round visits every session once. The inner store hashes the keys
        // anyway; the scatter only avoids any accidental locality.
        let session = ((n % s).wrapping_mul(0x9e37_79b1)) % s;
        let mut session_id = [0u8; 16];
        session_id[..8].copy_from_slice(&session.to_le_bytes());
        ReplayItem {
            sender: self.sender,
            session_id,
            seq: n / s + 1,
            one_shot: false,
            ..*item
        }
    }

    /// Tracks every synthetic session at sequence number 0, with the given timing fields.
    pub fn preload(&self, timestamp: u64, expires_at: u64) -> Result<(), ReplayError> {
        let template = ReplayItem {
            sender: [0; 16],
            session_id: [0; 16],
            seq: 0,
            nonce: [0; 16],
            timestamp,
            expires_at,
            one_shot: false,
        };
        for session in 0..self.sessions {
            let mut item = self.map(&template, 0);
            item.session_id[..8].copy_from_slice(&session.to_le_bytes());
            item.seq = 0;
            self.inner.check_and_mark(&item, timestamp)?;
        }
        Ok(())
    }
}

impl<S: ReplayStore> ReplayStore for ScatteredSessions<S> {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        let n = self.next.load(Ordering::Relaxed);
        self.inner.check(&self.map(item, n), now)
    }

    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        let n = self.next.load(Ordering::Relaxed);
        self.inner.check_and_mark(&self.map(item, n), now)?;
        self.next.store(n + 1, Ordering::Relaxed);
        Ok(())
    }
}

/// The memory-latency floor a replay check on a cold session cannot beat: a chain of
/// dependent reads, each of a random cache line of a `bytes`-sized array (as large as a
/// replay store holding a million sessions), so that every read misses the CPU caches and
/// the TLB as a cold session's window does.
pub struct PointerChase {
    next: Vec<u64>,
    at: usize,
}

/// Words per 64-byte cache line.
const LINE_WORDS: usize = 8;

impl PointerChase {
    /// A single random cycle through every cache line of a `bytes`-sized array
    /// (Sattolo's algorithm, seeded: the layout is the same from run to run).
    pub fn new(bytes: usize) -> Self {
        let lines = (bytes / 64).max(2);
        let mut order: Vec<usize> = (0..lines).collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in (1..lines).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x % i as u64) as usize;
            order.swap(i, j);
        }
        let mut next = vec![0u64; lines * LINE_WORDS];
        for w in order.windows(2) {
            next[w[0] * LINE_WORDS] = (w[1] * LINE_WORDS) as u64;
        }
        next[order[lines - 1] * LINE_WORDS] = (order[0] * LINE_WORDS) as u64;
        PointerChase { next, at: 0 }
    }

    /// Follows `hops` links; time it and divide by `hops`.
    pub fn walk(&mut self, hops: usize) -> usize {
        let mut at = self.at;
        for _ in 0..hops {
            at = self.next[at] as usize;
        }
        self.at = at;
        at
    }
}

/// The floor of one message: what a user would write with the crates directly, no
/// envelope around it. The same bytes as a steady-state MAC-mode (or signed-mode)
/// envelope to one recipient: the cleartext fields written by hand, the payload encrypted
/// with the `chacha20poly1305` crate, the BLAKE3 message hash over everything before the
/// authenticator, then one keyed-BLAKE3 tag (or one Ed25519 signature).
pub struct Floor {
    aead: chacha20poly1305::ChaCha20Poly1305,
    header_hash: [u8; 32],
    mac_key: [u8; 32],
    signing: ed25519_dalek::SigningKey,
    /// The metadata map, encoded once (MessagePack, as the envelope carries it).
    metadata: Vec<u8>,
    seq: u64,
}

impl Floor {
    /// A floor whose messages carry `metadata` (keys and values under 256 bytes).
    pub fn new(metadata: &rpcseal::Metadata) -> Floor {
        use chacha20poly1305::KeyInit;
        use getrandom::SysRng;
        use rand_core::{Rng, UnwrapErr};
        let mut k = [0u8; 32];
        UnwrapErr(SysRng).fill_bytes(&mut k);
        let mut encoded = vec![0x80 | metadata.len().min(15) as u8];
        let mut str_into = |s: &str| {
            if s.len() < 32 {
                encoded.push(0xa0 | s.len() as u8);
            } else {
                encoded.extend_from_slice(&[0xd9, s.len().min(255) as u8]);
            }
            encoded.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
        };
        for (key, value) in metadata.iter().take(15) {
            str_into(key);
            str_into(value);
        }
        Floor {
            aead: chacha20poly1305::ChaCha20Poly1305::new(&k.into()),
            header_hash: [7; 32],
            mac_key: [9; 32],
            signing: ed25519_dalek::SigningKey::generate(&mut UnwrapErr(SysRng)),
            metadata: encoded,
            seq: 0,
        }
    }

    /// Cleartext fields (the same lengths as rpcseal's), the payload encrypted, and the
    /// message hash over all of it.
    fn body(&mut self, payload: &[u8], out: &mut Vec<u8>) -> [u8; 32] {
        use chacha20poly1305::aead::AeadInOut;
        use getrandom::SysRng;
        use rand_core::{Rng, UnwrapErr};
        let mut nonce = [0u8; 16];
        UnwrapErr(SysRng).fill_bytes(&mut nonce);
        // Array of 10, version, suite, session reference, nil block, seq, timestamp,
        // nonce, metadata, body header.
        out.extend_from_slice(&[0x9a, 0x03, 0x01, 0xc4, 16]);
        out.extend_from_slice(&self.header_hash[..16]);
        out.push(0xc0);
        out.push(0xcf);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(0xce);
        out.extend_from_slice(&1_800_000_000u32.to_be_bytes());
        out.extend_from_slice(&[0xc4, 16]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&self.metadata);
        out.push(0xc6);
        out.extend_from_slice(&((payload.len() + 16) as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(payload);
        let tag = self
            .aead
            .encrypt_inout_detached(
                &Self::nonce(self.seq).into(),
                b"",
                (&mut out[start..]).into(),
            )
            .expect("payload far below the AEAD's limit");
        out.extend_from_slice(&tag);
        self.seq += 1;
        let mut h = blake3::Hasher::new_derive_key("floor message");
        h.update(&self.header_hash);
        h.update(out);
        *h.finalize().as_bytes()
    }

    fn nonce(seq: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&seq.to_be_bytes());
        n
    }

    /// A MAC-mode message: body, then a 16-byte keyed-BLAKE3 tag over the message hash.
    pub fn seal_mac(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let mh = self.body(payload, out);
        out.extend_from_slice(&[0xc4, 16]);
        out.extend_from_slice(&blake3::keyed_hash(&self.mac_key, &mh).as_bytes()[..16]);
    }

    /// A signed-mode message: body, then an Ed25519 signature over the message hash.
    pub fn seal_signed(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        use ed25519_dalek::Signer;
        let mh = self.body(payload, out);
        out.extend_from_slice(&[0xc4, 64]);
        out.extend_from_slice(&self.signing.sign(&mh).to_bytes());
    }

    /// The receiver's side of [`Floor::seal_mac`]: hash, tag check (constant time),
    /// decrypt into a new buffer. `None` when anything does not verify.
    pub fn open_mac(&self, env: &[u8], payload_len: usize) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::AeadInOut;
        let covered = env.get(..env.len().checked_sub(18)?)?;
        let mut h = blake3::Hasher::new_derive_key("floor message");
        h.update(&self.header_hash);
        h.update(covered);
        let tag = blake3::keyed_hash(&self.mac_key, h.finalize().as_bytes());
        let ok: bool =
            subtle::ConstantTimeEq::ct_eq(&tag.as_bytes()[..16], &env[env.len() - 16..]).into();
        if !ok {
            return None;
        }
        let body = covered.get(covered.len().checked_sub(payload_len + 16)?..)?;
        let mut out = body[..payload_len].to_vec();
        let seq = u64::from_be_bytes(env.get(23..31)?.try_into().ok()?);
        self.aead
            .decrypt_inout_detached(
                &Self::nonce(seq).into(),
                b"",
                out.as_mut_slice().into(),
                <&[u8; 16]>::try_from(&body[payload_len..]).ok()?.into(),
            )
            .ok()?;
        Some(out)
    }
}

/// The usual hybrid design the brief measures against: per message, one HPKE single-shot
/// seal of the payload (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
/// ChaCha20Poly1305, the suite rpcseal wraps session keys with) and one Ed25519 signature
/// over `enc || ciphertext`; the receiver verifies, then opens.
pub struct Hybrid {
    sk: HpkeSk,
    pk: HpkePk,
    signer: ed25519_dalek::SigningKey,
    verifier: ed25519_dalek::VerifyingKey,
}

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeSk = <HpkeKem as hpke::Kem>::PrivateKey;
/// An HPKE public key of the hybrid peer's suite (for the "N HPKE seals" floor).
pub type HpkePk = <HpkeKem as hpke::Kem>::PublicKey;
type HpkeEnc = <HpkeKem as hpke::Kem>::EncappedKey;

impl Default for Hybrid {
    fn default() -> Self {
        Self::new()
    }
}

impl Hybrid {
    /// A receiver key pair and a sender signing key, fresh from the OS.
    pub fn new() -> Hybrid {
        let (sk, pk) = Self::keypair();
        let signer =
            ed25519_dalek::SigningKey::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
        let verifier = signer.verifying_key();
        Hybrid {
            sk,
            pk,
            signer,
            verifier,
        }
    }

    /// A fresh HPKE key pair of the peer's suite.
    pub fn keypair() -> (HpkeSk, HpkePk) {
        <HpkeKem as hpke::Kem>::gen_keypair_with_rng(&mut rand_core::UnwrapErr(getrandom::SysRng))
    }

    /// One message: seal and sign, then verify and open. Returns the opened payload.
    pub fn roundtrip(&self, payload: &[u8]) -> Vec<u8> {
        use ed25519_dalek::{Signer, Verifier};
        let (enc, ct) = hpke_seal(&self.pk, b"", payload);
        let mut signed = enc.to_vec();
        signed.extend_from_slice(&ct);
        let sig = self.signer.sign(&signed);
        assert!(self.verifier.verify(&signed, &sig).is_ok());
        hpke_open(&self.sk, &enc, b"", &ct).expect("the peer's own message opens")
    }
}

/// One HPKE single-shot seal (base mode, info `bench`): `(enc, ciphertext || tag)`.
pub fn hpke_seal(pk: &HpkePk, aad: &[u8], pt: &[u8]) -> ([u8; 32], Vec<u8>) {
    use hpke::Serializable;
    let mut buf = pt.to_vec();
    let (enc, tag) = hpke::single_shot_seal_inout_detached_with_rng::<
        hpke::aead::ChaCha20Poly1305,
        hpke::kdf::HkdfSha256,
        HpkeKem,
    >(
        &hpke::OpModeS::Base,
        pk,
        b"bench",
        buf.as_mut_slice().into(),
        aad,
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
    .expect("a generated key is valid");
    buf.extend_from_slice(&tag.to_bytes());
    (enc.to_bytes().into(), buf)
}

/// Opens what [`hpke_seal`] made; `None` if it does not open.
pub fn hpke_open(sk: &HpkeSk, enc: &[u8; 32], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    use hpke::Deserializable;
    let enc = HpkeEnc::from_bytes(enc).ok()?;
    let (ct, tag) = ct.split_at(ct.len().checked_sub(16)?);
    let mut buf = ct.to_vec();
    hpke::single_shot_open_inout_detached::<
        hpke::aead::ChaCha20Poly1305,
        hpke::kdf::HkdfSha256,
        HpkeKem,
    >(
        &hpke::OpModeR::Base,
        sk,
        &enc,
        b"bench",
        buf.as_mut_slice().into(),
        aad,
        &hpke::aead::AeadTag::from_bytes(tag).ok()?,
    )
    .ok()?;
    Some(buf)
}
