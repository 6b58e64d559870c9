//! The payload AEAD: ChaCha20-Poly1305 of RFC 8439 (spec/envelope-v3.md §6), unchanged,
//! with a Poly1305 that is fast in builds without AVX2 enabled at compile time.
//!
//! Why this module exists: the `poly1305` crate (0.8, and 0.9 alike) picks its AVX2 backend
//! at run time. Part of that backend, the per-key setup (`R^2`, the precomputed
//! multipliers) and some of the finalisation, lives in trait impls and helper functions that
//! cannot carry `#[target_feature(enable = "avx2")]`. In a build without AVX2 enabled at
//! compile time, every AVX2 intrinsic in them is then an out-of-line call with its vectors
//! passed through memory. ChaCha20-Poly1305 derives a new Poly1305 key for every message, so
//! every message pays that setup: about 1 us per call whatever the length, ten times the
//! rest of the work for a 64-byte payload. With `-C target-feature=+avx2` the same code is
//! inlined and the cost disappears, but a library cannot choose its users' compile flags.
//!
//! So, in builds without AVX2 at compile time, this module computes Poly1305 itself for
//! messages shorter than [`SCALAR_BELOW`]: the textbook scalar algorithm (three limbs of
//! 44/44/42 bits, 64x64->128-bit products), safe code, no secret-dependent branches or
//! indices. The keystream still comes from the `chacha20` crate (whose run-time detected
//! AVX2 backend is fully inlined and fast). From [`SCALAR_BELOW`] bytes on, the crate's
//! AVX2 block function wins over the scalar code despite its setup cost (measured
//! crossover: 4 KiB), and in builds with AVX2 at compile time the `chacha20poly1305` crate
//! is used for every length. The tests check both against RFC 8439's vectors and against
//! each other.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of the AEAD tag.
pub(crate) const TAG_LEN: usize = 16;

/// Messages (AAD and text) shorter than this use the scalar Poly1305 in builds without AVX2
/// at compile time. Measured crossover on x86_64 with AVX2: 4 KiB (README.perf.md).
pub(crate) const SCALAR_BELOW: usize = 4096;

/// True when a message of `len` bytes goes through this module's own Poly1305.
fn scalar(len: usize) -> bool {
    !cfg!(target_feature = "avx2") && len < SCALAR_BELOW
}

/// A ChaCha20-Poly1305 key, ready to seal or open many messages.
pub(crate) struct PayloadCipher {
    key: Zeroizing<[u8; 32]>,
    inner: chacha20poly1305::ChaCha20Poly1305,
}

impl PayloadCipher {
    pub(crate) fn new(key: &[u8; 32]) -> PayloadCipher {
        use chacha20poly1305::KeyInit;
        PayloadCipher {
            key: Zeroizing::new(*key),
            inner: chacha20poly1305::ChaCha20Poly1305::new(key.into()),
        }
    }

    /// Encrypts `buf` in place; returns the tag. `aad` is authenticated, not encrypted.
    pub(crate) fn encrypt(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        if scalar(aad.len() + buf.len()) {
            let (mut cipher, poly_key) = self.start(nonce);
            cipher.apply_keystream(buf);
            return poly1305_aead_tag(&poly_key, aad, buf);
        }
        use chacha20poly1305::aead::AeadInPlace;
        self.inner
            .encrypt_in_place_detached(nonce.into(), aad, buf)
            .expect("payload lengths are bounded far below the AEAD's limit")
            .into()
    }

    /// Checks the tag over `aad` and the ciphertext in `buf`, then decrypts it in place.
    /// On failure `buf` is left as it was.
    pub(crate) fn decrypt(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        if scalar(aad.len() + buf.len()) {
            let (mut cipher, poly_key) = self.start(nonce);
            let expected = poly1305_aead_tag(&poly_key, aad, buf);
            if !bool::from(expected.ct_eq(tag)) {
                return Err(());
            }
            cipher.apply_keystream(buf);
            return Ok(());
        }
        use chacha20poly1305::aead::AeadInPlace;
        self.inner
            .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
            .map_err(|_| ())
    }

    /// The cipher positioned at block 1, and the one-time Poly1305 key from block 0
    /// (RFC 8439 §2.6 and §2.8).
    fn start(&self, nonce: &[u8; 12]) -> (ChaCha20, Zeroizing<[u8; 32]>) {
        let mut cipher = ChaCha20::new((&*self.key).into(), nonce.into());
        let mut block0 = Zeroizing::new([0u8; 64]);
        cipher.apply_keystream(&mut block0[..]);
        let mut poly_key = Zeroizing::new([0u8; 32]);
        poly_key.copy_from_slice(&block0[..32]);
        cipher.seek(64u64);
        (cipher, poly_key)
    }
}

/// RFC 8439 §2.8: Poly1305 over `aad`, zero padding, the ciphertext, zero padding, and the
/// two lengths as 64-bit little-endian numbers.
fn poly1305_aead_tag(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
    let mut p = Poly1305::new(key);
    p.update_padded(aad);
    p.update_padded(ciphertext);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    p.block(&lengths, 1 << 40);
    p.finish()
}

const MASK44: u64 = (1 << 44) - 1;
const MASK42: u64 = (1 << 42) - 1;

/// Poly1305 (RFC 8439 §2.5): the accumulator `h` and the key `r` in three limbs of 44, 44
/// and 42 bits, so each product of a limb of `h` and a limb of `r` fits 128 bits with room
/// for the three-term sums. `2^130 = 5 (mod p)` folds the high products back, hence the
/// precomputed `20 * r1` and `20 * r2` (`2^132 = 4 * 2^130`).
struct Poly1305 {
    r: [u64; 3],
    /// `20 * r1`, `20 * r2`.
    s: [u64; 2],
    h: [u64; 3],
    pad: u128,
}

impl Poly1305 {
    fn new(key: &[u8; 32]) -> Poly1305 {
        let r = u128::from_le_bytes(key[..16].try_into().expect("16 bytes"))
            & 0x0ffffffc_0ffffffc_0ffffffc_0fffffff;
        let r0 = (r as u64) & MASK44;
        let r1 = ((r >> 44) as u64) & MASK44;
        let r2 = ((r >> 88) as u64) & MASK42;
        Poly1305 {
            r: [r0, r1, r2],
            s: [r1 * 20, r2 * 20],
            h: [0; 3],
            pad: u128::from_le_bytes(key[16..].try_into().expect("16 bytes")),
        }
    }

    /// Absorbs `data` in 16-byte blocks, the last one zero-padded to 16 bytes (the AEAD
    /// construction's padding, not Poly1305's own `0x01` marker: every AEAD block is full).
    fn update_padded(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(16);
        for c in &mut chunks {
            self.block(c.try_into().expect("16 bytes"), 1 << 40);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            self.block(&last, 1 << 40);
        }
    }

    /// `h = (h + block + hibit * 2^128) * r mod 2^130 - 5`, partly reduced.
    #[inline(always)]
    fn block(&mut self, m: &[u8; 16], hibit: u64) {
        let t0 = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
        let t1 = u64::from_le_bytes(m[8..].try_into().expect("8 bytes"));
        let [r0, r1, r2] = self.r;
        let [s1, s2] = self.s;
        let h0 = self.h[0] + (t0 & MASK44);
        let h1 = self.h[1] + (((t0 >> 44) | (t1 << 20)) & MASK44);
        let h2 = self.h[2] + (((t1 >> 24) & MASK42) | hibit);
        let m = |a: u64, b: u64| u128::from(a) * u128::from(b);
        let d0 = m(h0, r0) + m(h1, s2) + m(h2, s1);
        let mut d1 = m(h0, r1) + m(h1, r0) + m(h2, s2);
        let mut d2 = m(h0, r2) + m(h1, r1) + m(h2, r0);
        d1 += d0 >> 44;
        let h0 = (d0 as u64) & MASK44;
        d2 += d1 >> 44;
        let h1 = (d1 as u64) & MASK44;
        let c = (d2 >> 42) as u64;
        let h2 = (d2 as u64) & MASK42;
        let h0 = h0 + c * 5;
        self.h = [h0 & MASK44, h1 + (h0 >> 44), h2];
    }

    /// Full reduction mod `2^130 - 5`, then `+ pad mod 2^128` (RFC 8439 §2.5.1).
    fn finish(mut self) -> [u8; TAG_LEN] {
        let [mut h0, mut h1, mut h2] = self.h;
        for _ in 0..2 {
            h2 += h1 >> 44;
            h1 &= MASK44;
            h0 += (h2 >> 42) * 5;
            h2 &= MASK42;
            h1 += h0 >> 44;
            h0 &= MASK44;
        }
        // g = h + 5 - 2^130; if it does not borrow, h >= p and the result is g.
        let g0 = h0 + 5;
        let g1 = h1 + (g0 >> 44);
        let g2 = (h2 + (g1 >> 44)).wrapping_sub(1 << 42);
        let use_g = (g2 >> 63).wrapping_sub(1); // all ones when g2 did not borrow
        let h0 = (h0 & !use_g) | (g0 & MASK44 & use_g);
        let h1 = (h1 & !use_g) | (g1 & MASK44 & use_g);
        let h2 = (h2 & !use_g) | (g2 & MASK42 & use_g);
        let h = u128::from(h0)
            .wrapping_add(u128::from(h1) << 44)
            .wrapping_add(u128::from(h2) << 88);
        let tag = h.wrapping_add(self.pad).to_le_bytes();
        self.h.zeroize();
        tag
    }
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        self.r.zeroize();
        self.s.zeroize();
        self.h.zeroize();
        self.pad.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::KeyInit;
    use rand_core::{OsRng, RngCore};

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n', ':'], "")).unwrap()
    }

    /// Poly1305 alone on full and partial blocks (a partial last block gets the 0x01 marker).
    fn poly1305_mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let mut p = Poly1305::new(key);
        let mut chunks = msg.chunks_exact(16);
        for c in &mut chunks {
            p.block(c.try_into().unwrap(), 1 << 40);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            last[rest.len()] = 1;
            p.block(&last, 0);
        }
        p.finish()
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
        let mut buf = pt.to_vec();
        let c = PayloadCipher::new(&key);
        let tag = c.encrypt(&nonce, &aad, &mut buf);
        assert_eq!(tag.to_vec(), unhex("1ae10b594f09e26a7e902ecbd0600691"));
        assert_eq!(&buf[..16], &unhex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
        c.decrypt(&nonce, &aad, &mut buf, &tag).unwrap();
        assert_eq!(&buf[..], &pt[..]);
    }

    /// Both paths agree with the `chacha20poly1305` crate on random keys, nonces, lengths
    /// (every length up to 300 bytes, then some large ones) and reject every bad tag.
    #[test]
    fn agrees_with_the_chacha20poly1305_crate() {
        let mut lengths: Vec<usize> = (0..300).collect();
        lengths.extend([1023, 1024, 1025, 4096 + 7, 65536, 1 << 20]);
        for len in lengths {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 12];
            OsRng.fill_bytes(&mut key);
            OsRng.fill_bytes(&mut nonce);
            let mut aad = vec![0u8; len % 37];
            OsRng.fill_bytes(&mut aad);
            let mut pt = vec![0u8; len];
            OsRng.fill_bytes(&mut pt);
            let ours = PayloadCipher::new(&key);
            let theirs = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
            let mut a = pt.clone();
            let ta = ours.encrypt(&nonce, &aad, &mut a);
            let mut b = pt.clone();
            let tb = theirs
                .encrypt_in_place_detached((&nonce).into(), &aad, &mut b)
                .unwrap();
            assert_eq!(a, b, "ciphertext, length {len}");
            assert_eq!(ta.to_vec(), tb.to_vec(), "tag, length {len}");
            let mut bad = ta;
            bad[len % 16] ^= 1 << (len % 8);
            let mut c = a.clone();
            assert!(ours.decrypt(&nonce, &aad, &mut c, &bad).is_err());
            assert_eq!(c, a, "a failed open leaves the buffer as it was");
            ours.decrypt(&nonce, &aad, &mut c, &ta).unwrap();
            assert_eq!(c, pt);
        }
    }

    /// The scalar Poly1305 is what builds without AVX2 use; check it even in builds with it.
    #[test]
    fn scalar_poly1305_agrees_with_the_poly1305_crate() {
        use poly1305::universal_hash::KeyInit as _;
        for len in (0..200).chain([4096, 100_003]) {
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            let mut msg = vec![0u8; len];
            OsRng.fill_bytes(&mut msg);
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
}
