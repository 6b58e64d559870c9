//! Replay protection (normative text: `spec/replay.md`).
//!
//! The Opener hands every message that passed decoding, suite policy, authentication
//! and freshness to a [`ReplayStore`] as a [`ReplayItem`], calling
//! [`ReplayStore::check_and_mark`] last. A store remembers:
//!
//! * per (sender, session) a sliding window of [`WINDOW_SIZE`] sequence numbers
//!   (RFC 6479 style ring of 64-bit words), for ordinary sessions;
//! * per (sender, session) one entry, for one-shot sessions (the nonce plays no part:
//!   a one-shot session accepts exactly one message, spec/replay.md §4).
//!
//! Everything fails closed: an error of any kind means "reject the message".
//!
//! Stores, and which to use when (`spec/replay.md` §0):
//! * [`MemoryReplayStore`]: bounded, sharded, in-process; the default. Eviction of a
//!   live entry raises a watermark so that it can never reopen a replay. Its protection
//!   lasts **one process lifetime**: a restarted process starts empty, and a message
//!   captured within the clock skew before the restart can be replayed to it once. A
//!   service that restarts and cannot share a store sets
//!   [`MemoryReplayConfig::start_watermark`]: it then refuses, for about the loss margin
//!   after each start, every message dated before the start plus the margin.
//! * [`file::FileReplayStore`]: one file on one host, for the command-line tool and a few
//!   processes; survives restarts, refuses to start from a missing file unless told the
//!   file is new, and treats a file that cannot prove it is the latest as a loss (§6.4).
//! * `RedisReplayStore` (cargo feature `redis`): shared by every replica of a service;
//!   survives restarts of the receivers, and detects a loss of Redis's state.
//! * [`NoReplayCheck`]: accepts everything. Dangerous; for tests and for receivers that
//!   knowingly do without replay protection.
//!
//! # Assumption about `expires_at`
//! Stores drop state once `now > expires_at`. This is sound only because no message of
//! that session can be accepted any more: the Opener's freshness check rejects it, and
//! the stores themselves also reject any item with `now > expires_at`
//! ([`ReplayError::Expired`]). `expires_at` must therefore be the same for every message
//! of a session at a given receiver (a function of the authenticated session lifetime and
//! the receiver's allowed skew).

use std::sync::Arc;

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod window;

#[cfg(feature = "redis")]
pub use self::redis::{RedisReplayConfig, RedisReplayStore, RedisTopology};
pub use memory::{MemoryReplayConfig, MemoryReplayStore};

/// Width of the per-session sequence window: a sequence number `seq` is accepted only if
/// `seq > top` or `top - seq < WINDOW_SIZE` (and it was not accepted before), where `top`
/// is the highest sequence number accepted in the session so far.
pub const WINDOW_SIZE: u64 = 1024;

pub mod file;

/// What the Opener hands the replay store for one message that passed every other check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayItem {
    /// Key id of the sender's identity key (16 bytes).
    pub sender: [u8; 16],
    /// The session's id (16 random bytes chosen by the sealer).
    pub session_id: [u8; 16],
    /// Message sequence number within the session (starts at 0).
    pub seq: u64,
    /// The message's random nonce. No store keys anything by it any more (one-shot
    /// sessions are tracked per session, spec/replay.md §4); kept for stores that log it.
    pub nonce: [u8; 16],
    /// The message's timestamp, unix seconds (already checked against the receiver clock).
    pub timestamp: u64,
    /// Unix seconds after which no message of this session can pass the Opener's
    /// freshness checks any more (session expiry + allowed skew); state may be dropped then.
    pub expires_at: u64,
    /// True when the session allows exactly one message (`max_messages = 1`): tracked by
    /// one entry per (sender, session), not by a window.
    pub one_shot: bool,
}

/// spec/replay.md §4: one-shot state is per (sender, session_id). The stores' keys keep a
/// 16-byte slot where the nonce once was (so the file and Redis layouts are unchanged); it
/// is always this value.
pub(crate) const ONE_SHOT_SLOT: [u8; 16] = [0; 16];

/// A replay store: remembers accepted messages until they can no longer be fresh.
///
/// Implementations must be safe to share between threads and must fail closed: when
/// they cannot answer for certain, they return an error, never `Ok`.
pub trait ReplayStore: Send + Sync {
    /// Read-only: would this item be accepted now? Never marks. (A store may record a
    /// store-wide watermark here when it detects a loss of its state or a clock far ahead,
    /// `spec/replay.md` §1.2 and §2: nothing about this item.)
    ///
    /// May be used as a cheap early filter (also before authentication). An `Ok` here
    /// does not reserve anything: [`check_and_mark`](Self::check_and_mark) decides.
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError>;

    /// Atomically check and record. On error nothing is recorded.
    ///
    /// Of any number of concurrent calls for the same message (on this store or on any
    /// store sharing its state), at most one returns `Ok`.
    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError>;

    /// The loss margin of a store that sets a *loss watermark* (`spec/replay.md` §6.4) when
    /// it finds its state lost or cannot trust it: the watermark is `now + margin`, and it
    /// covers every message a previous incarnation accepted only if the margin is at least
    /// the receivers' allowed clock skew plus the largest clock difference between them.
    /// [`OpenerBuilder::build`](crate::OpenerBuilder::build) refuses a store whose margin
    /// is smaller than its policy's skew. `None` (the default): the store never sets one.
    fn loss_margin_secs(&self) -> Option<u64> {
        None
    }
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        (**self).check(item, now)
    }
    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        (**self).check_and_mark(item, now)
    }
    fn loss_margin_secs(&self) -> Option<u64> {
        (**self).loss_margin_secs()
    }
}

impl<T: ReplayStore + ?Sized> ReplayStore for Box<T> {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        (**self).check(item, now)
    }
    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        (**self).check_and_mark(item, now)
    }
    fn loss_margin_secs(&self) -> Option<u64> {
        (**self).loss_margin_secs()
    }
}

/// Default loss margin of the stores, in seconds (`spec/replay.md` §6.4): at least the
/// default clock skew (120 s) plus 180 s of clock difference between receivers.
pub const DEFAULT_LOSS_MARGIN_SECS: u64 = 300;

/// How far a receiver's clock may step back behind the latest clock reading a store has
/// recorded before the store stops trusting that reading (`spec/replay.md` §1.2), in
/// seconds: 600.
///
/// A store remembers the latest `now` of any successful mark and never uses an earlier one
/// (so a clock stepping back cannot revive state dropped as expired). One mark made while
/// the clock was far ahead (an NTP fault, a VM resumed with a stale offset) would then make
/// every session that expires before that reading look expired until real time catches up.
/// When `now` is more than this far behind the recorded reading, the store instead
/// re-bases its clock on `now` and raises its watermark to `now + loss margin`, as after a
/// loss of state: untracked messages dated up to then are refused for about the loss
/// margin, and nothing dropped can be replayed.
pub const CLOCK_STEP_BACK_LIMIT_SECS: u64 = 600;

/// Why a replay store rejected a message. Every variant means: reject the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The message was accepted before.
    #[error("replayed message: it was accepted before")]
    Replayed,
    /// The sequence number is older than the session's window.
    #[error("message sequence number is older than the replay window")]
    OutsideWindow,
    /// The message's session or nonce is not tracked (any more) and its timestamp is at or
    /// below the store's watermark (raised by an eviction, or, for Redis, by a detected
    /// loss of state), so the store cannot prove it is new.
    #[error(
        "message is not tracked by the replay store and its timestamp is at or below the \
         watermark (the store was full or lost its state; failing closed)"
    )]
    BelowWatermark,
    /// `now` is past the item's `expires_at` (or past the latest `now` this store has
    /// seen): its state may already have been dropped, so it cannot be accepted.
    #[error("message's session has expired for replay purposes (now is past expires_at)")]
    Expired,
    /// The store cannot answer: unreachable, timed out, out of memory, protocol error.
    #[error("replay store unavailable: {reason}")]
    Unavailable {
        /// Human-readable cause.
        reason: String,
    },
    /// The store is configured in a way that could forget accepted messages (for Redis:
    /// an evicting `maxmemory-policy`), or its configuration is invalid.
    #[error("replay store misconfigured: {reason}")]
    Misconfigured {
        /// Human-readable cause.
        reason: String,
    },
}

impl ReplayError {
    /// True when the error says something about the store rather than about the message
    /// ([`Unavailable`](Self::Unavailable), [`Misconfigured`](Self::Misconfigured)). Such messages must still be rejected;
    /// this is for metrics, alerting and retry policy.
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            ReplayError::Unavailable { .. } | ReplayError::Misconfigured { .. }
        )
    }
}

/// A replay "store" that accepts every message and records nothing.
///
/// **Dangerous**: with it, every captured message can be replayed for as long as it
/// passes the freshness check. Use only in tests, or when the application is itself
/// idempotent and has accepted that risk explicitly.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplayCheck;

impl ReplayStore for NoReplayCheck {
    fn check(&self, _item: &ReplayItem, _now: u64) -> Result<(), ReplayError> {
        Ok(())
    }
    fn check_and_mark(&self, _item: &ReplayItem, _now: u64) -> Result<(), ReplayError> {
        Ok(())
    }
}
