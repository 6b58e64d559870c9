//! Deliberately broken receivers, for tests only (hidden feature `vectors`): each
//! [`Mutant`] breaks one rule of the spec the way a plausible wrong implementation would,
//! so that `tests/mutants.rs` can show that some vector rejects every such implementation
//! (issue 14: every vector fails on today's code or on a broken variant kept as a test).
//!
//! The switch is per thread and only exists with the `vectors` feature; without it,
//! `is` is a constant `false` and every check site folds away.

/// One broken rule.
#[cfg(feature = "vectors")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Mutant {
    /// Cofactored Ed25519 verification, `S` reduced mod L, `R` decoded leniently (spec §1).
    LenientSignatures,
    /// A session `verify_key` is refused only when of small order (spec §2.1, §8 step 4f).
    SmallOrderOnlyKeyCheck,
    /// `|timestamp - now| >= skew` is clock skew (spec §8 step 6).
    SkewInclusive,
    /// An inline block is always established, never looked up by its header hash (§8 step 4).
    NoCacheForInlineBlocks,
    /// The authenticator is checked before time (§8 step 9 before step 6).
    AuthenticatorBeforeTime,
    /// The message limit is checked before time (§8 step 7 before step 6).
    LimitsBeforeTime,
    /// Time is checked before the sender and mode re-checks (§8 step 6 before step 5).
    TimeBeforeSender,
    /// Step 5's re-checks are skipped for cached sessions.
    NoRecheckOfCachedSessions,
    /// The replay store's `expires_at` is the session's expiry, without the skew
    /// (replay.md §1.1).
    StoreExpiresWithoutSkew,
    /// A replay window of 64 (replay.md §3 requires W >= 1024).
    Window64,
    /// No read-only replay check before the authenticator (§8 step 8).
    NoReadOnlyReplayCheck,
    /// Time is checked before an inline session is established (§8 step 6 before step 4).
    TimeBeforeEstablish,
    /// Key strings: no checksum check, padding and non-zero trailing bits accepted (§2.4).
    LenientKeyStrings,
    /// Public keys: no canonical-encoding or prime-order checks, only small order (§2.1).
    NoCanonicalKeyChecks,
    /// Any known entry kind in any suite: an X25519 wrap inside a suite-2 session (§5.4).
    AnyEntryKindInAnySuite,
    /// The keyring's `require=pq` is ignored (keyring.md §2 rule 4).
    IgnoreRequirePq,
    /// An entry's `enc` is not checked against its kind's length (§5.4).
    NoEncLengthCheck,
    /// The envelope's suite is not compared with its session's (§7.1, §8 step 5).
    NoEnvelopeSuiteCheck,
    /// Suite-2 blocks are held to `max_recipients` only, not to the post-quantum limit (§7.3).
    NoPqRecipientLimit,
}

#[cfg(feature = "vectors")]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<Mutant>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `m` active on this thread.
#[cfg(feature = "vectors")]
pub fn with<T>(m: Option<Mutant>, f: impl FnOnce() -> T) -> T {
    let before = ACTIVE.with(|a| a.replace(m));
    let out = f();
    ACTIVE.with(|a| a.set(before));
    out
}

/// Whether mutant `m` is active on this thread.
#[cfg(feature = "vectors")]
pub(crate) fn is(m: Mutant) -> bool {
    ACTIVE.with(|a| a.get()) == Some(m)
}

/// The active mutant, if any.
#[cfg(feature = "vectors")]
pub(crate) fn active() -> Option<Mutant> {
    ACTIVE.with(|a| a.get())
}

/// Without the `vectors` feature there are no mutants.
#[cfg(not(feature = "vectors"))]
#[inline(always)]
pub(crate) fn is(_: Mutant) -> bool {
    false
}

/// Without the `vectors` feature the names exist (so check sites compile) but can never be
/// active. Some are named only at check sites that are themselves behind the feature.
#[cfg(not(feature = "vectors"))]
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) enum Mutant {
    LenientSignatures,
    SmallOrderOnlyKeyCheck,
    SkewInclusive,
    NoCacheForInlineBlocks,
    AuthenticatorBeforeTime,
    LimitsBeforeTime,
    TimeBeforeSender,
    NoRecheckOfCachedSessions,
    TimeBeforeEstablish,
    LenientKeyStrings,
    NoCanonicalKeyChecks,
    AnyEntryKindInAnySuite,
    IgnoreRequirePq,
    NoEncLengthCheck,
    NoEnvelopeSuiteCheck,
    NoPqRecipientLimit,
}
