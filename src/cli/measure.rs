//! Measuring sticks shared by `rpcseal bench` (src/cli/bench.rs) and the criterion benches
//! (benches/envelope.rs includes this file with `#[path]`), so that the two cannot drift.
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
