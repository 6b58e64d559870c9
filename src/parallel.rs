//! The two hashes of a large message on a second thread: opt-in, through
//! [`SealerConfig::parallel_hash_from`](crate::SealerConfig::parallel_hash_from) and
//! [`Policy::parallel_hash_from`](crate::Policy::parallel_hash_from).
//!
//! Sealing or opening an encrypted message is three passes over its bytes: the ChaCha20
//! keystream and the Poly1305 authenticator of the payload AEAD (spec/envelope-v3.md §6),
//! and the BLAKE3 message hash over every byte the envelope's authenticator covers,
//! ciphertext and AEAD tag included (§7.2; a Poly1305 tag alone is forgeable by a
//! co-recipient who knows EK, §10.3). On one core they run one after the other. Here the
//! two hashes, Poly1305 (a universal hash) and BLAKE3, run on a scoped thread
//! ([`std::thread::scope`]) while the caller's thread runs the keystream, which is the
//! larger share (on the machine of README.perf.md, for 1 MiB: ChaCha20 ~470 us, Poly1305
//! ~250 us, BLAKE3 ~160 us):
//!
//! - sealing: the caller's thread encrypts the payload piece by piece ([`PIECE`] bytes)
//!   straight into the envelope and hands each finished piece of ciphertext to the thread
//!   over a channel, as a shared slice of the output; the thread has absorbed the header
//!   hash and the bytes before the ciphertext before it starts, absorbs each piece into
//!   Poly1305 and BLAKE3, then makes the tag, absorbs it too and hands both results back;
//! - opening: the thread checks the AEAD tag over the ciphertext and hashes the covered
//!   bytes (all there already) while the caller's thread decrypts into a buffer of its
//!   own, zeroized when the tag does not verify or anything else fails.
//!
//! The bytes, and every result, are the ones the sequential code gives. One thread per
//! message, finished before the call returns (the scope waits for it); when it cannot be
//! spawned, or does not come back with its results, the caller's thread computes them
//! itself. No `unsafe`: the thread borrows the output's finished pieces through
//! `chunks_mut`, and the scope ends those borrows. The Poly1305 state that the thread
//! holds is wiped when it is dropped there (the `zeroize` feature of `poly1305`, and the
//! scalar Poly1305's `Drop`).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::aead::{PayloadCipher, TAG_LEN};
use crate::envelope;

/// Ciphertext bytes per piece handed to the hashing thread: a multiple of the ChaCha20
/// block (64 bytes) and of the Poly1305 block (16). The hashes of the last piece are what
/// the caller waits for after the keystream, so smaller pieces shorten that tail;
/// hand-overs cost little (see [`SPIN`]). 32 KiB measured best among 16, 32 and 64 KiB.
pub(crate) const PIECE: usize = 32 * 1024;

/// How long a thread that waits for the other one polls its channel before it sleeps. The
/// hashing thread hashes a piece faster than the caller's thread encrypts one, so it waits
/// for every piece; sleeping and waking for each would cost two system calls per piece,
/// and on a virtual machine a wake-up of an idle CPU costs tens of microseconds, more than
/// hashing the piece. A piece takes ~15 us to encrypt, so in the steady state neither
/// thread sleeps; a stalled peer (a busy machine) costs at most this much spinning before
/// the waiter sleeps.
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

/// Encrypts `payload` into `body` (the same length) under `nonce` with the ChaCha20
/// keystream on the caller's thread, while a scoped thread computes, piece by piece, the
/// Poly1305 authenticator over the ciphertext and the message hash of `header_hash`, `head`
/// (the covered bytes before the ciphertext), the ciphertext and the tag.
///
/// Returns the tag and the message hash, or `None` for the hash when the thread could not
/// be spawned or did not return one: the caller then hashes the covered bytes itself (the
/// tag is then computed on the caller's thread). Fails as [`PayloadCipher::encrypt_b2b`]
/// does.
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
    let (mut keystream, mut auth) = cipher.stream(nonce, b"", payload.len()).split();
    let mut hasher = envelope::message_hasher(header_hash);
    hasher.update(head);
    let done = thread::scope(|scope| {
        let (pieces, pieces_rx) = mpsc::channel::<&[u8]>();
        let (done_tx, done) = mpsc::channel::<([u8; TAG_LEN], [u8; 32])>();
        let spawned = hashing_thread().spawn_scoped(scope, move || {
            while let Some(piece) = next(&pieces_rx) {
                auth.absorb(piece);
                hasher.update(piece);
            }
            let tag = auth.tag();
            hasher.update(&tag);
            // Fails only when the caller's thread has stopped waiting, which it does not.
            let _ = done_tx.send((tag, *hasher.finalize().as_bytes()));
        });
        let Ok(handle) = spawned else {
            keystream.apply(payload, body)?;
            return Ok(None);
        };
        for (plain, piece) in payload.chunks(PIECE).zip(body.chunks_mut(PIECE)) {
            keystream.apply(plain, piece)?;
            let piece: &[u8] = piece;
            // Fails only when the thread has gone; then `done` says so below.
            let _ = pieces.send(piece);
        }
        drop(pieces);
        match next(&done) {
            // The thread has nothing left to do but return. The scope waits for that
            // without `join`, which would also wait for the system to dismantle the thread.
            Some(result) => {
                drop(handle);
                Ok(Some(result))
            }
            // It stopped without a result (it cannot panic on any input, but if it did):
            // collect the panic so that the scope does not re-raise it.
            None => {
                let _ = handle.join();
                Ok(None)
            }
        }
    })?;
    Ok(match done {
        Some((tag, hash)) => (tag, Some(hash)),
        None => (cipher.tag_of(nonce, b"", body), None),
    })
}

/// Decrypts `ciphertext` into `payload` (the same length) under `nonce` with the ChaCha20
/// keystream on the caller's thread, while a scoped thread checks `tag` (Poly1305 over the
/// ciphertext) and computes the message hash of `header_hash` and `covered` (which ends
/// with the ciphertext and the tag). Returns the AEAD's verdict and the message hash.
/// When the AEAD fails, `payload` is zeroed.
pub(crate) fn open_body(
    cipher: &PayloadCipher,
    nonce: &[u8; 12],
    tag: &[u8; TAG_LEN],
    header_hash: &[u8; 32],
    covered: &[u8],
    ciphertext: &[u8],
    payload: &mut [u8],
) -> (Result<(), ()>, [u8; 32]) {
    let (mut keystream, mut auth) = cipher.stream(nonce, b"", ciphertext.len()).split();
    let (decrypted, checked) = thread::scope(|scope| {
        let hh = *header_hash;
        let spawned = hashing_thread().spawn_scoped(scope, move || {
            auth.absorb(ciphertext);
            let verified = auth.verify(tag);
            (verified, envelope::message_hash(&hh, covered))
        });
        let decrypted = keystream.apply(ciphertext, payload);
        (decrypted, spawned.ok().and_then(|h| h.join().ok()))
    });
    let (verified, hash) = checked.unwrap_or_else(|| {
        let verified = bool::from(cipher.tag_of(nonce, b"", ciphertext).ct_eq(tag));
        (verified, envelope::message_hash(header_hash, covered))
    });
    if decrypted.is_ok() && verified {
        (Ok(()), hash)
    } else {
        payload.zeroize();
        (Err(()), hash)
    }
}
