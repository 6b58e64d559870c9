//! The message hash on a second thread, for large payloads: opt-in, through
//! [`SealerConfig::parallel_hash_from`](crate::SealerConfig::parallel_hash_from) and
//! [`Policy::parallel_hash_from`](crate::Policy::parallel_hash_from).
//!
//! Sealing or opening an encrypted message is two passes over its bytes: ChaCha20-Poly1305
//! over the payload (spec/envelope-v3.md §6) and the BLAKE3 message hash over every byte
//! the authenticator covers, ciphertext and AEAD tag included (§7.2; a Poly1305 tag alone
//! is forgeable by a co-recipient who knows EK, §10.3). On one core they run one after the
//! other, so a large message costs the AEAD plus the hash. Here the hash runs on a scoped
//! thread ([`std::thread::scope`]) while the caller's thread does the AEAD:
//!
//! - sealing: the caller's thread encrypts the payload piece by piece ([`PIECE`] bytes)
//!   straight into the envelope and hands each finished piece of ciphertext to the thread
//!   over a channel, as a shared slice of the output; the thread has absorbed the header
//!   hash and the bytes before the ciphertext before it starts, hands its hasher back
//!   when the last piece is in, and the caller's thread absorbs the tag;
//! - opening: the thread hashes the covered bytes (all there already) while the caller's
//!   thread checks the AEAD tag and decrypts into a buffer of its own, zeroized when
//!   anything fails.
//!
//! The bytes, and every result, are the ones the sequential code gives. One thread per
//! message, finished before the call returns (the scope waits for it); when it cannot be
//! spawned, or does not come back with a hash, the caller's thread computes the hash
//! itself. No `unsafe`: the thread borrows the output's finished pieces through
//! `chunks_mut`, and the scope ends those borrows.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::aead::{PayloadCipher, TAG_LEN};
use crate::envelope;

/// Ciphertext bytes per piece handed to the hashing thread: a multiple of the ChaCha20
/// block (64 bytes) and of the Poly1305 block (16). The hash of the last piece is what the
/// caller waits for after the AEAD, so smaller pieces shorten that tail; hand-overs cost
/// little (see [`SPIN`]). 32 KiB measured best among 16, 32 and 64 KiB (README.perf.md).
pub(crate) const PIECE: usize = 32 * 1024;

/// How long a thread that waits for the other one polls its channel before it sleeps. The
/// hashing thread hashes a piece several times faster than the caller's thread encrypts
/// one, so it waits for every piece; sleeping and waking for each would cost two system
/// calls per piece, and on a virtual machine a wake-up of an idle CPU costs tens of
/// microseconds, more than hashing the piece. A piece of ciphertext takes ~20 us to
/// encrypt, so in the steady state neither thread sleeps; a stalled peer (a busy machine)
/// costs at most this much spinning before the waiter sleeps.
const SPIN: Duration = Duration::from_micros(100);

fn hashing_thread() -> thread::Builder {
    thread::Builder::new().name("rpcseal-hash".into())
}

/// The next message on `rx`, `None` once its sender is gone: polls for up to [`SPIN`],
/// then sleeps until it comes.
fn next<T>(rx: &mpsc::Receiver<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(x) => return Some(x),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if start.elapsed() < SPIN => std::hint::spin_loop(),
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// Encrypts `payload` into `body` (the same length) under `nonce` on the caller's thread,
/// while a scoped thread computes the message hash of `header_hash`, `head` (the covered
/// bytes before the ciphertext), the ciphertext and the tag.
///
/// Returns the tag and the message hash, or `None` for the hash when the thread could not
/// be spawned or did not return one: the caller then hashes the covered bytes itself.
/// Fails as [`PayloadCipher::encrypt_b2b`] does.
pub(crate) fn seal_body(
    cipher: &PayloadCipher,
    nonce: &[u8; 12],
    header_hash: &[u8; 32],
    head: &[u8],
    payload: &[u8],
    body: &mut [u8],
) -> Result<([u8; TAG_LEN], Option<[u8; 32]>), ()> {
    if payload.len() != body.len() {
        return Err(());
    }
    let mut stream = cipher.stream(nonce, b"", payload.len());
    let mut hasher = envelope::message_hasher(header_hash);
    hasher.update(head);
    let hasher = thread::scope(|scope| {
        let (pieces, pieces_rx) = mpsc::channel::<&[u8]>();
        let (done_tx, done) = mpsc::channel::<blake3::Hasher>();
        let spawned = hashing_thread().spawn_scoped(scope, move || {
            while let Some(piece) = next(&pieces_rx) {
                hasher.update(piece);
            }
            // Fails only when the caller's thread has stopped waiting, which it does not.
            let _ = done_tx.send(hasher);
        });
        let Ok(handle) = spawned else {
            stream.encrypt(payload, body)?;
            return Ok(None);
        };
        for (plain, piece) in payload.chunks(PIECE).zip(body.chunks_mut(PIECE)) {
            stream.encrypt(plain, piece)?;
            let piece: &[u8] = piece;
            // Fails only when the thread has gone; then `done` says so below.
            let _ = pieces.send(piece);
        }
        drop(pieces);
        match next(&done) {
            // The thread has nothing left to do but return. The scope waits for that
            // without `join`, which would also wait for the system to dismantle the thread.
            Some(hasher) => {
                drop(handle);
                Ok(Some(hasher))
            }
            // It stopped without a hash (it cannot panic on any input, but if it did):
            // collect the panic so that the scope does not re-raise it.
            None => {
                let _ = handle.join();
                Ok(None)
            }
        }
    })?;
    let tag = stream.tag();
    let hash = hasher.map(|mut h| {
        h.update(&tag);
        *h.finalize().as_bytes()
    });
    Ok((tag, hash))
}

/// Decrypts `ciphertext` into `payload` (the same length) under `nonce` and checks `tag`
/// on the caller's thread, while a scoped thread computes the message hash of
/// `header_hash` and `covered`. Returns the AEAD's verdict and the message hash. When the
/// AEAD fails, `payload` is zeroed ([`PayloadCipher::decrypt_b2b`]).
pub(crate) fn open_body(
    cipher: &PayloadCipher,
    nonce: &[u8; 12],
    tag: &[u8; TAG_LEN],
    header_hash: &[u8; 32],
    covered: &[u8],
    ciphertext: &[u8],
    payload: &mut [u8],
) -> (Result<(), ()>, [u8; 32]) {
    let (verdict, hashed) = thread::scope(|scope| {
        let hh = *header_hash;
        let spawned =
            hashing_thread().spawn_scoped(scope, move || envelope::message_hash(&hh, covered));
        let verdict = cipher.decrypt_b2b(nonce, b"", ciphertext, payload, tag);
        (verdict, spawned.ok().and_then(|h| h.join().ok()))
    });
    let hash = hashed.unwrap_or_else(|| envelope::message_hash(header_hash, covered));
    (verdict, hash)
}
