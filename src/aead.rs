//! The payload AEAD: ChaCha20-Poly1305 of RFC 8439 (spec/envelope-v3.md §6), unchanged,
//! computed from the input straight into the output (no copy of the payload first) and in
//! pieces, with a Poly1305 that is fast in builds without AVX2 enabled at compile time.
//!
//! Why this module exists: the `chacha20poly1305` crate takes the whole text in one call,
//! so nothing can look at the ciphertext before all of it is encrypted (and up to 0.10 it
//! encrypted only in place, so a sealer that keeps the caller's payload had to copy it into
//! the envelope first). [`AeadStream`] is the same construction, built from the same crates
//! (`chacha20` 0.10 for the keystream, `poly1305` 0.9 for the authenticator, the versions
//! `chacha20poly1305` 0.11 uses): it encrypts from one buffer into another, in pieces of
//! any length, so a caller can hand each finished piece of ciphertext on while it
//! encrypts the next one; and it splits into its two halves, the ChaCha20 keystream
//! ([`Keystream`]) and the Poly1305 authenticator ([`Authenticator`]), so that they can
//! run on two threads (`src/parallel.rs`).
//!
//! And the `poly1305` crate picks its AVX2 backend at run time. Part of that backend, the
//! per-key setup (`R^2`, the precomputed multipliers) and some of the finalisation, lives
//! in trait impls and helper functions that cannot carry `#[target_feature(enable =
//! "avx2")]`. In a build without AVX2 enabled at compile time, every AVX2 intrinsic in
//! them is then an out-of-line call with its vectors passed through memory. ChaCha20-Poly1305
//! derives a new Poly1305 key for every message, so every message pays that setup: about
//! 1 us per call whatever the length, ten times the rest of the work for a 64-byte
//! payload. With `-C target-feature=+avx2` the same code is inlined and the cost
//! disappears, but a library cannot choose its users' compile flags.
//!
//! So, in builds without AVX2 at compile time, this module computes Poly1305 itself for
//! messages shorter than [`SCALAR_BELOW`]: the scalar algorithm in radix 2^64 (two limbs
//! of 64 bits and a small third, four 64x64->128-bit products per block), safe code, no
//! secret-dependent branches or indices. From [`SCALAR_BELOW`] bytes on, the crate's AVX2 block function wins over the
//! scalar code despite its setup cost (measured crossover: 4 KiB), and in builds with AVX2
//! at compile time the `poly1305` crate is used for every length. The keystream always
//! comes from the `chacha20` crate (whose run-time detected AVX2 backend is fully inlined
//! and fast). The tests check every path against RFC 8439's vectors and against the
//! `chacha20poly1305` crate.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use poly1305::universal_hash::{KeyInit as _, UniversalHash as _};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of the AEAD tag.
pub(crate) const TAG_LEN: usize = 16;

/// Messages (AAD and text) shorter than this use the scalar Poly1305 in builds without AVX2
/// at compile time. Measured crossover on x86_64 with AVX2: 4 KiB (README.perf.md).
pub(crate) const SCALAR_BELOW: usize = 4096;

/// The longest text one nonce can encrypt (RFC 8439 §2.8): ChaCha20's 32-bit block counter
/// starts at 1 for the text, so `(2^32 - 1)` blocks of 64 bytes.
pub(crate) const MAX_TEXT: u64 = ((1 << 32) - 1) * 64;

/// [`AeadStream`] works through long pieces in slices of this many bytes, ChaCha20 then
/// Poly1305 on each, so Poly1305 reads what ChaCha20 just wrote (or is about to read) from
/// the L1 cache. A multiple of the ChaCha20 block (64 bytes) and of the Poly1305 block (16).
const INTERLEAVE: usize = 4096;

/// Whether the scalar Poly1305 pays in this build: only on x86 and x86_64 without AVX2 at
/// compile time, where the crate's run-time detected AVX2 backend has its ~1 us key setup.
/// On other targets the crate's backend has no such setup, and the crate is used throughout.
const SCALAR_PAYS: bool =
    cfg!(any(target_arch = "x86", target_arch = "x86_64")) && !cfg!(target_feature = "avx2");

/// True when a message of `len` bytes goes through this module's own Poly1305.
fn scalar(len: usize) -> bool {
    SCALAR_PAYS && len < SCALAR_BELOW
}

/// True when a message of `len` bytes is sealed and opened in one shot rather than with
/// an [`AeadStream`].
fn short(len: usize) -> bool {
    len < SCALAR_BELOW
}

/// A ChaCha20-Poly1305 key, ready to seal or open many messages.
pub(crate) struct PayloadCipher {
    key: Zeroizing<[u8; 32]>,
}

impl PayloadCipher {
    pub(crate) fn new(key: &[u8; 32]) -> PayloadCipher {
        PayloadCipher {
            key: Zeroizing::new(*key),
        }
    }

    /// Encrypts `input` into `output` (of the same length); returns the tag. `aad` is
    /// authenticated, not encrypted. Fails only when the lengths differ or the text is
    /// longer than [`MAX_TEXT`]; `output` then holds no meaning.
    pub(crate) fn encrypt_b2b(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        if short(aad.len().saturating_add(input.len())) {
            // Short messages skip the stream (its state is several hundred bytes, moved
            // and copied more than the work on a short message is worth).
            let (mut cipher, key) = self.start(nonce);
            cipher
                .try_apply_keystream_b2b(input, output)
                .map_err(|_| ())?;
            return Ok(one_shot_tag(&key, aad, output));
        }
        let mut s = self.stream(nonce, aad, input.len());
        s.encrypt(input, output)?;
        Ok(s.tag())
    }

    /// Checks the tag over `aad` and the ciphertext `input` and decrypts it into `output`
    /// (of the same length), in one pass. On failure `output` is zeroed: no plaintext of a
    /// message that does not verify is left behind.
    pub(crate) fn decrypt_b2b(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        if short(aad.len().saturating_add(input.len())) {
            // As in encrypt_b2b; the tag first, so nothing is decrypted when it fails.
            let (mut cipher, key) = self.start(nonce);
            let expected = one_shot_tag(&key, aad, input);
            if bool::from(expected.ct_eq(tag))
                && cipher.try_apply_keystream_b2b(input, output).is_ok()
            {
                return Ok(());
            }
            output.zeroize();
            return Err(());
        }
        let mut s = self.stream(nonce, aad, input.len());
        if s.decrypt(input, output).is_ok() && s.verify(tag) {
            return Ok(());
        }
        output.zeroize();
        Err(())
    }

    /// The tag of `ciphertext` (with `aad`) under `nonce`, without decrypting it.
    pub(crate) fn tag_of(&self, nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
        let (_, mut auth) = self.stream(nonce, aad, ciphertext.len()).split();
        auth.absorb(ciphertext);
        auth.tag()
    }

    /// A stream over one message of `len` bytes of text (the length chooses the Poly1305
    /// implementation; the tag covers the bytes actually fed), `aad` already absorbed.
    pub(crate) fn stream(&self, nonce: &[u8; 12], aad: &[u8], len: usize) -> AeadStream {
        let (cipher, poly_key) = self.start(nonce);
        let mut mac = if scalar(aad.len().saturating_add(len)) {
            Mac::Scalar(Poly1305::new(&poly_key))
        } else {
            Mac::Crate(poly1305::Poly1305::new((&*poly_key).into()))
        };
        mac.update_padded(aad);
        AeadStream {
            keystream: Keystream { cipher },
            auth: Authenticator {
                mac,
                aad_len: aad.len() as u64,
                len: 0,
                pending: [0; 16],
                pending_len: 0,
            },
        }
    }

    /// The cipher positioned at block 1, and the one-time Poly1305 key: the first 32 bytes
    /// of block 0 (RFC 8439 §2.6 and §2.8). The rest of block 0 is never used; the seek
    /// drops it without computing anything (block 1 starts on a block boundary).
    fn start(&self, nonce: &[u8; 12]) -> (ChaCha20, Zeroizing<[u8; 32]>) {
        let mut cipher = ChaCha20::new((&*self.key).into(), nonce.into());
        let mut poly_key = Zeroizing::new([0u8; 32]);
        cipher.apply_keystream(&mut poly_key[..]);
        cipher.seek(64u64);
        (cipher, poly_key)
    }
}

/// ChaCha20-Poly1305 of one message, fed in pieces of any length: encrypt (or decrypt)
/// piece after piece, then take the tag (or verify it). The same bytes as the
/// `chacha20poly1305` crate's one-shot calls, whatever the split.
///
/// The cipher's state and the Poly1305 state are secrets: both are zeroized when the
/// stream is dropped (the `zeroize` features of `chacha20` and `poly1305`, and
/// [`Poly1305`]'s `Drop`). No `Debug`.
pub(crate) struct AeadStream {
    keystream: Keystream,
    auth: Authenticator,
}

impl AeadStream {
    /// Encrypts the next piece of text from `input` into `output` (of the same length).
    /// Fails when the lengths differ or the text grows past [`MAX_TEXT`]; the stream must
    /// not be used after a failure.
    pub(crate) fn encrypt(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), ()> {
        if input.len() != output.len() {
            return Err(());
        }
        for (i, o) in input.chunks(INTERLEAVE).zip(output.chunks_mut(INTERLEAVE)) {
            self.keystream.apply(i, o)?;
            self.auth.absorb(o);
        }
        Ok(())
    }

    /// Decrypts the next piece of ciphertext from `input` into `output` (of the same
    /// length), absorbing the ciphertext. The plaintext is not authenticated until
    /// [`AeadStream::verify`] says so: a caller zeroizes it when that fails. Fails as
    /// [`AeadStream::encrypt`] does.
    pub(crate) fn decrypt(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), ()> {
        if input.len() != output.len() {
            return Err(());
        }
        for (i, o) in input.chunks(INTERLEAVE).zip(output.chunks_mut(INTERLEAVE)) {
            self.auth.absorb(i);
            self.keystream.apply(i, o)?;
        }
        Ok(())
    }

    /// The tag of what was fed. The last call on a stream.
    pub(crate) fn tag(&mut self) -> [u8; TAG_LEN] {
        self.auth.tag()
    }

    /// True when `tag` is the tag of what was fed; a constant-time comparison. The last
    /// call on a stream.
    pub(crate) fn verify(&mut self, tag: &[u8; TAG_LEN]) -> bool {
        self.auth.verify(tag)
    }

    /// The two halves, for two threads: the keystream (encryption or decryption) and the
    /// authenticator over the ciphertext. Together they are the stream.
    pub(crate) fn split(self) -> (Keystream, Authenticator) {
        (self.keystream, self.auth)
    }
}

/// The ChaCha20 half of an [`AeadStream`]: the keystream from block 1 on.
pub(crate) struct Keystream {
    cipher: ChaCha20,
}

impl Keystream {
    /// XORs the next bytes of keystream into `input`, writing `output` (of the same
    /// length): encryption and decryption alike. Fails when the lengths differ or the
    /// keystream would run past [`MAX_TEXT`].
    pub(crate) fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), ()> {
        self.cipher
            .try_apply_keystream_b2b(input, output)
            .map_err(|_| ())
    }
}

/// The Poly1305 half of an [`AeadStream`]: the authenticator over the AAD (absorbed at the
/// start) and the ciphertext, fed in pieces of any length.
pub(crate) struct Authenticator {
    mac: Mac,
    aad_len: u64,
    /// Bytes of ciphertext so far.
    len: u64,
    /// Ciphertext bytes not yet absorbed because they do not fill a Poly1305 block yet.
    pending: [u8; 16],
    pending_len: usize,
}

impl Authenticator {
    /// Feeds the next ciphertext bytes to Poly1305 in whole 16-byte blocks, keeping a
    /// partial block for the next piece.
    pub(crate) fn absorb(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.pending_len > 0 {
            let take = (16 - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < 16 {
                return;
            }
            self.mac.update_padded(&self.pending);
            self.pending_len = 0;
        }
        let whole = data.len() - data.len() % 16;
        self.mac.update_padded(&data[..whole]);
        let rest = &data[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// The tag (RFC 8439 §2.8): the last ciphertext bytes zero-padded, then the two
    /// lengths as 64-bit little-endian numbers. The last call on an authenticator.
    ///
    /// This and the other finishing calls take `&mut self`, not `self`: the state is
    /// several hundred bytes (the crate's Poly1305), and moving it through three calls
    /// measurably slowed short messages.
    pub(crate) fn tag(&mut self) -> [u8; TAG_LEN] {
        let pending = self.pending;
        self.mac.update_padded(&pending[..self.pending_len]);
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&self.aad_len.to_le_bytes());
        lengths[8..].copy_from_slice(&self.len.to_le_bytes());
        self.mac.update_padded(&lengths);
        self.mac.finalize()
    }

    /// True when `tag` is the tag of what was fed; a constant-time comparison. The last
    /// call on an authenticator.
    pub(crate) fn verify(&mut self, tag: &[u8; TAG_LEN]) -> bool {
        bool::from(self.tag().ct_eq(tag))
    }
}

/// The Poly1305 of one message: this module's scalar code or the crate's. Unboxed on
/// purpose although the crate's state is larger: a stream lives on the stack for one
/// message, and a box would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Mac {
    Scalar(Poly1305),
    Crate(poly1305::Poly1305),
}

impl Mac {
    /// Absorbs `data` in 16-byte blocks, the last one zero-padded (the AEAD's padding).
    fn update_padded(&mut self, data: &[u8]) {
        match self {
            Mac::Scalar(p) => p.update_padded(data),
            Mac::Crate(p) => p.update_padded(data),
        }
    }

    /// The tag. The crate's `finalize` consumes its state, so it finalizes a copy (the
    /// copy and the original are both wiped on drop).
    fn finalize(&mut self) -> [u8; TAG_LEN] {
        match self {
            Mac::Scalar(p) => p.finish(),
            Mac::Crate(p) => p.clone().finalize().into(),
        }
    }
}

/// RFC 8439 §2.8 in one call: Poly1305 (this module's or the crate's, as [`scalar`]
/// says) over `aad`, zero padding, the ciphertext, zero padding, and the two lengths as
/// 64-bit little-endian numbers.
fn one_shot_tag(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    if scalar(aad.len().saturating_add(ciphertext.len())) {
        let mut p = Poly1305::new(key);
        p.update_padded(aad);
        p.update_padded(ciphertext);
        p.update_padded(&lengths);
        p.finish()
    } else {
        let mut p = poly1305::Poly1305::new(key.into());
        p.update_padded(aad);
        p.update_padded(ciphertext);
        p.update_padded(&lengths);
        p.finalize().into()
    }
}

/// Poly1305 (RFC 8439 §2.5) in radix 2^64: the accumulator `h = h0 + h1·2^64 + h2·2^128`
/// (`h2` a few bits) and the key `r = r0 + r1·2^64`. The clamping of `r` clears the low two
/// bits of `r1`, so `2^128·r1 = 2^130·(r1/4) ≡ 5·(r1/4) (mod p)`: the products that land at
/// or above `2^128` fold back through `s1 = r1 + r1/4 = 5·r1/4`, and a block costs four full
/// 64x64->128-bit products and two small ones (the three-limb radix-2^44 form needs nine).
/// Bounds: after each block `h2 <= 4`; before the next product `h2 <= 6`, so `h2·s1` and
/// `h2·r0` stay below 2^63 (`r0`, `r1 < 2^60`) and the sums below 2^126.
struct Poly1305 {
    r: [u64; 2],
    /// `r1 + (r1 >> 2)`.
    s1: u64,
    h: [u64; 3],
    pad: u128,
}

impl Poly1305 {
    fn new(key: &[u8; 32]) -> Poly1305 {
        let r0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes")) & 0x0fff_fffc_0fff_ffff;
        let r1 =
            u64::from_le_bytes(key[8..16].try_into().expect("8 bytes")) & 0x0fff_fffc_0fff_fffc;
        Poly1305 {
            r: [r0, r1],
            s1: r1 + (r1 >> 2),
            h: [0; 3],
            pad: u128::from_le_bytes(key[16..].try_into().expect("16 bytes")),
        }
    }

    /// Absorbs `data` in 16-byte blocks, the last one zero-padded to 16 bytes (the AEAD
    /// construction's padding, not Poly1305's own `0x01` marker: every AEAD block is full).
    fn update_padded(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(16);
        for c in &mut chunks {
            self.block(c.try_into().expect("16 bytes"), 1);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            self.block(&last, 1);
        }
    }

    /// `h = (h + block + hibit·2^128)·r mod 2^130 - 5`, partly reduced (`h < 5·2^128`).
    #[inline(always)]
    fn block(&mut self, m: &[u8; 16], hibit: u64) {
        let t0 = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
        let t1 = u64::from_le_bytes(m[8..].try_into().expect("8 bytes"));
        let [r0, r1] = self.r;
        let s1 = self.s1;
        let [h0, h1, h2] = self.h;
        // h += m (with carries; no branch depends on them).
        let (h0, c0) = h0.overflowing_add(t0);
        let (h1, c1) = h1.overflowing_add(t1);
        let (h1, c2) = h1.overflowing_add(u64::from(c0));
        let h2 = h2 + u64::from(c1) + u64::from(c2) + hibit;
        // h *= r, the parts at 2^128 and above folded back through s1.
        let m = |a: u64, b: u64| u128::from(a) * u128::from(b);
        let d0 = m(h0, r0) + m(h1, s1);
        let d1 = m(h0, r1) + m(h1, r0) + u128::from(h2 * s1) + (d0 >> 64);
        let d2 = h2 * r0 + (d1 >> 64) as u64;
        // Bits 130 and up: c·2^130 = 5·c (mod p), 5·c = 4·c + c = (d2 & !3) + (d2 >> 2).
        let c = (d2 & !3) + (d2 >> 2);
        let (h0, c0) = (d0 as u64).overflowing_add(c);
        let (h1, c1) = (d1 as u64).overflowing_add(u64::from(c0));
        self.h = [h0, h1, (d2 & 3) + u64::from(c1)];
    }

    /// Full reduction mod `2^130 - 5`, then `+ pad mod 2^128` (RFC 8439 §2.5.1).
    fn finish(&mut self) -> [u8; TAG_LEN] {
        self.finish_with(true)
    }

    /// [`Poly1305::finish`]; `final_reduction = false` is a deliberately broken variant
    /// (no conditional subtraction of p) that the adversarial tests must catch.
    #[inline(always)]
    fn finish_with(&mut self, final_reduction: bool) -> [u8; TAG_LEN] {
        let [h0, h1, h2] = self.h;
        // h < 5·2^128 < 2p, so one conditional subtraction reduces it fully. g = h + 5:
        // h >= p exactly when g reaches 2^130, and then h - p = g - 2^130, whose low 128
        // bits are g0, g1.
        let (g0, c) = h0.overflowing_add(5);
        let (g1, c) = h1.overflowing_add(u64::from(c));
        let g2 = h2 + u64::from(c);
        let use_g = 0u64.wrapping_sub(g2 >> 2) & 0u64.wrapping_sub(u64::from(final_reduction));
        let h0 = (h0 & !use_g) | (g0 & use_g);
        let h1 = (h1 & !use_g) | (g1 & use_g);
        let h = u128::from(h0) | (u128::from(h1) << 64);
        let tag = h.wrapping_add(self.pad).to_le_bytes();
        self.h.zeroize();
        tag
    }
}

/// Poly1305 alone (RFC 8439 §2.5: a partial last block gets the `0x01` marker), with the
/// scalar code of this module whatever the build: for the differential fuzz target
/// (`fuzz/fuzz_targets/poly1305_differential.rs`) and the tests.
#[cfg(any(test, feature = "vectors"))]
pub(crate) fn poly1305_scalar(key: &[u8; 32], msg: &[u8], final_reduction: bool) -> [u8; 16] {
    let mut p = Poly1305::new(key);
    let mut chunks = msg.chunks_exact(16);
    for c in &mut chunks {
        p.block(c.try_into().expect("16 bytes"), 1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 16];
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] = 1;
        p.block(&last, 0);
    }
    p.finish_with(final_reduction)
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        self.r.zeroize();
        self.s1.zeroize();
        self.h.zeroize();
        self.pad.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::KeyInit;
    use getrandom::SysRng;
    use rand_core::{Rng, UnwrapErr};

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n', ':'], "")).unwrap()
    }

    /// Poly1305 alone on full and partial blocks (a partial last block gets the 0x01 marker).
    fn poly1305_mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        poly1305_scalar(key, msg, true)
    }

    #[test]
    fn poly1305_rfc8439_2_5_2() {
        let key: [u8; 32] = unhex(
            "85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b",
        )
        .try_into()
        .unwrap();
        let tag = poly1305_mac(&key, b"Cryptographic Forum Research Group");
        assert_eq!(
            tag.to_vec(),
            unhex("a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9")
        );
    }

    /// Edge cases of the final reduction: h just below, at and above p (RFC 8439 A.3
    /// vectors 1, 5 to 11 use such values).
    #[test]
    fn poly1305_rfc8439_a3_reduction_vectors() {
        let cases = [
            // #5: r = 2, s = 0, m = 0xff..ff
            (
                "02000000000000000000000000000000 00000000000000000000000000000000",
                "ffffffffffffffffffffffffffffffff",
                "03000000000000000000000000000000",
            ),
            // #6: r = 2, s = 0xff..ff, m = 2
            (
                "02000000000000000000000000000000 ffffffffffffffffffffffffffffffff",
                "02000000000000000000000000000000",
                "03000000000000000000000000000000",
            ),
            // #7
            (
                "01000000000000000000000000000000 00000000000000000000000000000000",
                "ffffffffffffffffffffffffffffffff f0ffffffffffffffffffffffffffffff 11000000000000000000000000000000",
                "05000000000000000000000000000000",
            ),
            // #8
            (
                "01000000000000000000000000000000 00000000000000000000000000000000",
                "ffffffffffffffffffffffffffffffff fbfefefefefefefefefefefefefefefe 01010101010101010101010101010101",
                "00000000000000000000000000000000",
            ),
            // #9
            (
                "02000000000000000000000000000000 00000000000000000000000000000000",
                "fdffffffffffffffffffffffffffffff",
                "faffffffffffffffffffffffffffffff",
            ),
            // #10
            (
                "01000000000000000400000000000000 00000000000000000000000000000000",
                "e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000 00000000000000000000000000000000 01000000000000000000000000000000",
                "14000000000000005500000000000000",
            ),
            // #11
            (
                "01000000000000000400000000000000 00000000000000000000000000000000",
                "e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000 00000000000000000000000000000000",
                "13000000000000000000000000000000",
            ),
        ];
        for (i, (key, msg, tag)) in cases.iter().enumerate() {
            let key: [u8; 32] = unhex(key).try_into().unwrap();
            assert_eq!(
                poly1305_mac(&key, &unhex(msg)).to_vec(),
                unhex(tag),
                "case {i}"
            );
        }
    }

    #[test]
    fn aead_rfc8439_2_8_2() {
        let key: [u8; 32] =
            unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce: [u8; 12] = unhex("070000004041424344454647").try_into().unwrap();
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut ct = vec![0u8; pt.len()];
        let c = PayloadCipher::new(&key);
        let tag = c.encrypt_b2b(&nonce, &aad, pt, &mut ct).unwrap();
        assert_eq!(tag.to_vec(), unhex("1ae10b594f09e26a7e902ecbd0600691"));
        assert_eq!(&ct[..16], &unhex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
        let mut back = vec![0u8; pt.len()];
        c.decrypt_b2b(&nonce, &aad, &ct, &mut back, &tag).unwrap();
        assert_eq!(&back[..], &pt[..]);
    }

    /// Lengths that cross every boundary the code has: every length up to 300, the scalar
    /// Poly1305 crossover, the interleaving slice, the piece the parallel hash receives, and
    /// a little over 1 MiB.
    fn interesting_lengths() -> Vec<usize> {
        let piece = crate::parallel::PIECE;
        let mut lengths: Vec<usize> = (0..300).collect();
        lengths.extend([1023, 1024, 1025]);
        lengths.extend([SCALAR_BELOW - 1, SCALAR_BELOW, SCALAR_BELOW + 1]);
        lengths.extend([INTERLEAVE - 1, INTERLEAVE + 1, 2 * INTERLEAVE + 15]);
        lengths.extend([piece - 1, piece, piece + 1, 2 * piece + 17]);
        lengths.push((1 << 20) + 5);
        lengths
    }

    fn random(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        UnwrapErr(SysRng).fill_bytes(&mut v);
        v
    }

    /// Encrypting from one buffer into another gives the `chacha20poly1305` crate's
    /// ciphertext and tag on random keys, nonces and texts, with and without AAD; opening
    /// restores the text and rejects a flipped bit in the tag or the ciphertext, leaving
    /// the output zeroed.
    #[test]
    fn agrees_with_the_chacha20poly1305_crate() {
        for len in interesting_lengths() {
            let key: [u8; 32] = random(32).try_into().unwrap();
            let nonce: [u8; 12] = random(12).try_into().unwrap();
            let aad = random(len % 37);
            let pt = random(len);
            let ours = PayloadCipher::new(&key);
            let theirs = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
            let mut a = vec![0u8; len];
            let ta = ours.encrypt_b2b(&nonce, &aad, &pt, &mut a).unwrap();
            let mut b = pt.clone();
            let tb = theirs
                .encrypt_inout_detached((&nonce).into(), &aad, b.as_mut_slice().into())
                .unwrap();
            assert_eq!(a, b, "ciphertext, length {len}");
            assert_eq!(ta.to_vec(), tb.to_vec(), "tag, length {len}");

            let mut bad = ta;
            bad[len % 16] ^= 1 << (len % 8);
            let mut out = vec![0xa5u8; len];
            assert!(ours.decrypt_b2b(&nonce, &aad, &a, &mut out, &bad).is_err());
            assert!(
                out.iter().all(|&x| x == 0),
                "a failed open zeroes its output"
            );
            if len > 0 {
                let mut flipped = a.clone();
                flipped[len / 2] ^= 0x10;
                out.fill(0xa5);
                assert!(ours
                    .decrypt_b2b(&nonce, &aad, &flipped, &mut out, &ta)
                    .is_err());
                assert!(out.iter().all(|&x| x == 0), "length {len}");
            }
            ours.decrypt_b2b(&nonce, &aad, &a, &mut out, &ta).unwrap();
            assert_eq!(out, pt, "length {len}");
        }
    }

    /// A stream fed in pieces of any lengths (odd ones, ones that split Poly1305 and
    /// ChaCha20 blocks) gives the one-shot ciphertext and tag, both ways.
    #[test]
    fn pieces_of_any_length_give_the_one_shot_result() {
        let key: [u8; 32] = random(32).try_into().unwrap();
        let nonce: [u8; 12] = random(12).try_into().unwrap();
        let c = PayloadCipher::new(&key);
        let splits: [&[usize]; 6] = [
            &[1],
            &[15, 1, 17],
            &[63, 64, 65],
            &[16, 48, 7],
            &[4095, 4097],
            &[crate::parallel::PIECE],
        ];
        for len in [
            0usize,
            1,
            16,
            100,
            300,
            5000,
            70_000,
            3 * crate::parallel::PIECE + 17,
        ] {
            let pt = random(len);
            let mut whole = vec![0u8; len];
            let tag = c.encrypt_b2b(&nonce, b"ad", &pt, &mut whole).unwrap();
            for split in splits {
                let mut s = c.stream(&nonce, b"ad", len);
                let mut ct = vec![0u8; len];
                let mut at = 0;
                for &n in split.iter().cycle() {
                    if at == len {
                        break;
                    }
                    let n = n.min(len - at);
                    s.encrypt(&pt[at..at + n], &mut ct[at..at + n]).unwrap();
                    at += n;
                }
                assert_eq!(ct, whole, "length {len}, split {split:?}");
                assert_eq!(s.tag(), tag, "length {len}, split {split:?}");

                let mut s = c.stream(&nonce, b"ad", len);
                let mut back = vec![0u8; len];
                let mut at = 0;
                for &n in split.iter().cycle() {
                    if at == len {
                        break;
                    }
                    let n = n.min(len - at);
                    s.decrypt(&ct[at..at + n], &mut back[at..at + n]).unwrap();
                    at += n;
                }
                assert!(s.verify(&tag), "length {len}, split {split:?}");
                assert_eq!(back, pt);
            }
        }
    }

    /// The two halves used apart, the keystream over the text in one split and the
    /// authenticator over the ciphertext in another, give the one-shot ciphertext and tag;
    /// `tag_of` gives the tag without decrypting.
    #[test]
    fn the_halves_apart_give_the_one_shot_result() {
        let c = PayloadCipher::new(&[9; 32]);
        let nonce = [3; 12];
        for len in [
            0usize,
            1,
            15,
            17,
            1000,
            5000,
            3 * crate::parallel::PIECE + 17,
        ] {
            let pt = random(len);
            let mut whole = vec![0u8; len];
            let tag = c.encrypt_b2b(&nonce, b"", &pt, &mut whole).unwrap();
            assert_eq!(c.tag_of(&nonce, b"", &whole), tag, "length {len}");
            let (mut ks, mut auth) = c.stream(&nonce, b"", len).split();
            let mut ct = vec![0u8; len];
            for (i, o) in pt.chunks(4097).zip(ct.chunks_mut(4097)) {
                ks.apply(i, o).unwrap();
            }
            for piece in ct.chunks(333) {
                auth.absorb(piece);
            }
            assert_eq!(ct, whole, "length {len}");
            assert!(auth.verify(&tag), "length {len}");
            let (mut ks, mut auth) = c.stream(&nonce, b"", len).split();
            let mut back = vec![0u8; len];
            auth.absorb(&ct);
            ks.apply(&ct, &mut back).unwrap();
            assert_eq!(auth.tag(), tag);
            assert_eq!(back, pt);
        }
    }

    /// The scalar and the crate's Poly1305 give one tag over the same stream (the declared
    /// length picks the implementation in builds without AVX2; with AVX2 both are the
    /// crate's).
    #[test]
    fn both_poly1305_paths_give_one_tag() {
        let c = PayloadCipher::new(&[7; 32]);
        for len in [0usize, 1, 17, 1000, SCALAR_BELOW - 1, SCALAR_BELOW + 1] {
            let pt = random(len);
            let mut x = vec![0u8; len];
            let mut y = vec![0u8; len];
            let mut small = c.stream(&[1; 12], b"", 0);
            let mut large = c.stream(&[1; 12], b"", 1 << 20);
            assert!(matches!(small.auth.mac, Mac::Scalar(_)) == SCALAR_PAYS);
            assert!(matches!(large.auth.mac, Mac::Crate(_)));
            small.encrypt(&pt, &mut x).unwrap();
            large.encrypt(&pt, &mut y).unwrap();
            assert_eq!(x, y);
            assert_eq!(small.tag(), large.tag(), "length {len}");
        }
    }

    /// Inconsistent lengths are an error, not a panic.
    #[test]
    fn mismatched_lengths_fail_without_panicking() {
        let c = PayloadCipher::new(&[7; 32]);
        let mut out = [0u8; 10];
        assert!(c.encrypt_b2b(&[0; 12], b"", &[1; 11], &mut out).is_err());
        assert!(c
            .decrypt_b2b(&[0; 12], b"", &[1; 9], &mut out, &[0; 16])
            .is_err());
        let mut s = c.stream(&[0; 12], b"", 10);
        assert!(s.encrypt(&[1; 10], &mut out[..9]).is_err());
        assert!(s.decrypt(&[1; 10], &mut out[..9]).is_err());
    }

    /// The scalar Poly1305 is what builds without AVX2 use; check it even in builds with it.
    #[test]
    fn scalar_poly1305_agrees_with_the_poly1305_crate() {
        for len in (0..200).chain([4096, 100_003]) {
            let mut key = [0u8; 32];
            UnwrapErr(SysRng).fill_bytes(&mut key);
            let mut msg = vec![0u8; len];
            UnwrapErr(SysRng).fill_bytes(&mut msg);
            let theirs = poly1305::Poly1305::new((&key).into()).compute_unpadded(&msg);
            assert_eq!(
                poly1305_mac(&key, &msg).to_vec(),
                theirs.to_vec(),
                "length {len}"
            );
        }
        // The largest limb values: an all-ones key part and all-ones messages.
        let key = [0xff; 32];
        let msg = vec![0xff; 1000];
        let theirs = poly1305::Poly1305::new((&key).into()).compute_unpadded(&msg);
        assert_eq!(poly1305_mac(&key, &msg).to_vec(), theirs.to_vec());
    }

    /// Adversarial inputs for the scalar Poly1305 (issue 14): accumulators steered onto
    /// p - 1, p, p + 1 and 2^130 before the final reduction, clamp-maximum r, all-0xff
    /// blocks, every length 0..300, RFC 8439 A.3 #1; each against the `poly1305` crate and,
    /// where the value is known in closed form, against that value. A variant without the
    /// final reduction (kept below) must fail.
    #[test]
    fn scalar_poly1305_survives_adversarial_inputs() {
        let crate_tag = |key: &[u8; 32], msg: &[u8]| -> [u8; 16] {
            poly1305::Poly1305::new(key.into())
                .compute_unpadded(msg)
                .into()
        };
        // r = 1, s = 0: the accumulator is the plain sum of the blocks (each with 2^128
        // added), and the tag is that sum mod p, mod 2^128.
        let mut key_r1 = [0u8; 32];
        key_r1[0] = 1;
        let le = |v: u128| v.to_le_bytes();
        let max = u128::MAX; // 2^128 - 1
        let steered: [(&str, Vec<[u8; 16]>, u128); 4] = [
            // (2^128 - 1) + (2^128 - 5) + 2 * 2^128 = 2^130 - 6 = p - 1
            ("p - 1", vec![le(max), le(max - 4)], max - 5),
            // ... - 4 = p: reduces to 0
            ("p", vec![le(max), le(max - 3)], 0),
            // p + 1: reduces to 1
            ("p + 1", vec![le(max), le(max - 2)], 1),
            // (2^128 - 1) + 1 + 0 + 3 * 2^128 = 2^130: reduces to 5
            ("2^130", vec![le(max), le(1), le(0)], 5),
        ];
        let mut broken_caught = false;
        for (what, blocks, want) in &steered {
            let msg: Vec<u8> = blocks.concat();
            let tag = poly1305_mac(&key_r1, &msg);
            assert_eq!(u128::from_le_bytes(tag), *want, "accumulator {what}");
            assert_eq!(tag, crate_tag(&key_r1, &msg), "accumulator {what}");
            broken_caught |= poly1305_scalar(&key_r1, &msg, false) != tag;
        }
        assert!(
            broken_caught,
            "a Poly1305 without the final reduction passes"
        );
        // RFC 8439 A.3 #1: all-zero key and 64 zero bytes give a zero tag.
        assert_eq!(poly1305_mac(&[0; 32], &[0; 64]), [0; 16]);
        // Clamp-maximum r (every bit the clamp keeps), s = 0 and s = all ones, over all-0xff
        // messages and over random ones, every length 0..300.
        let mut keys = vec![[0xff; 32], key_r1];
        let mut k = [0xff; 32];
        k[16..].fill(0);
        keys.push(k);
        let mut rnd = [0u8; 32];
        UnwrapErr(SysRng).fill_bytes(&mut rnd);
        rnd[..16].fill(0xff);
        keys.push(rnd);
        for key in &keys {
            for len in 0..300 {
                let ones = vec![0xff; len];
                assert_eq!(
                    poly1305_mac(key, &ones),
                    crate_tag(key, &ones),
                    "0xff x {len}"
                );
                let r = random(len);
                assert_eq!(poly1305_mac(key, &r), crate_tag(key, &r), "random {len}");
            }
        }
    }
}
