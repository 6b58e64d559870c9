//! Deliberately broken implementations, for tests only (hidden feature `vectors`): each
//! [`Mutant`] breaks one rule of the spec the way a plausible wrong implementation would,
//! so that `tests/mutants.rs` can show that some vector rejects every such implementation,
//! and that every vector rejects some wrong implementation (issue 14: each vector fails on
//! today's code or on a broken variant kept as a test).
//!
//! The switch is per thread and only exists with the `vectors` feature; without it, `is` is
//! a constant `false` and every check site folds away. Most check sites are one line in the
//! code that holds the rule (`src/open.rs`, `src/keys.rs`, `src/keyring.rs`, `src/seal.rs`,
//! `src/legacy.rs`, `src/session.rs`, `src/sign.rs`, `src/wire.rs`, `src/envelope.rs`,
//! `src/suite.rs`); the broken replay stores and the
//! key-string parser that keeps unchecked bytes live in the vector verifier
//! (`src/vectors/`), beside the code that builds the receiver.

/// Declares the one list of mutants: with the feature, a public enum and [`Mutant::ALL`];
/// without it, a private enum whose names exist only so that check sites compile.
macro_rules! mutants {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// One broken rule.
        #[cfg(feature = "vectors")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Mutant {
            $($(#[doc = $doc])+ $name,)+
        }

        #[cfg(feature = "vectors")]
        impl Mutant {
            /// Every mutant, in declaration order.
            pub const ALL: &'static [Mutant] = &[$(Mutant::$name,)+];
        }

        /// Without the `vectors` feature the names exist (so check sites compile) but can
        /// never be active. Some are named only at check sites that are themselves behind
        /// the feature.
        #[cfg(not(feature = "vectors"))]
        #[derive(Clone, Copy)]
        #[allow(dead_code)]
        pub(crate) enum Mutant {
            $($name,)+
        }
    };
}

mutants! {
    // ---- receivers: signatures and keys on the wire -------------------------------------
    /// Cofactored Ed25519 verification, `S` reduced mod L, `R` decoded leniently (spec §1).
    LenientSignatures,
    /// A session `verify_key` is refused only when of small order (spec §2.1, §8 step 4f).
    SmallOrderOnlyKeyCheck,
    /// Public keys: no canonical-encoding or prime-order checks, only small order (§2.1).
    NoCanonicalKeyChecks,
    /// Public keys: no small-order checks (X25519's contributory probe, Ed25519's `is_weak`);
    /// canonical encoding and prime order still checked (§2.1).
    NoSmallOrderKeyCheck,
    /// Public keys: only what the stock decoders check (Ed25519: `y` decodes to a point;
    /// X25519: nothing): no canonical-encoding, small-order or prime-order check (§2.1).
    StockKeyDecoding,
    /// The header's `max_messages` is not capped at 2^48 by the receiver (§5.1).
    NoMaxMessagesCapInHeader,
    // ---- receivers: decoding (§3, §7) ----------------------------------------------------
    /// Integers, lengths and counts in any encoding, not only the shortest (§3).
    NonShortestAccepted,
    /// A text string where a byte string belongs is read as its bytes (§3: no type
    /// confusion).
    StrAsBin,
    /// Bytes after the last field are ignored (§3, §7.1).
    TrailingBytesAccepted,
    /// Any version number is read as the expected one (§1.1).
    AnyVersionAccepted,
    /// An unknown suite id is read as the one known suite (§1.2).
    UnknownSuitesAccepted,
    /// Metadata keys in any order, duplicates included (§7.1).
    MetadataOrderUnchecked,
    /// An empty metadata key is accepted (§7.1).
    EmptyMetadataKeyAccepted,
    /// A reader that coerces types: `true`/`false` and negative or float numbers read as
    /// unsigned integers (§3: no type confusion).
    CoercingReader,
    /// The header's own rules unchecked: `expires > not_before`, `max_messages >= 1`, a
    /// `verify_key` or commitment present where the mode has none (§5.1).
    HeaderRulesUnchecked,
    /// The block's own rules unchecked: at least one recipient, known entry kinds, distinct
    /// key ids (§5.3).
    BlockRulesUnchecked,
    /// An inline block is used whatever the envelope's `session_ref` says (§7.1).
    SessionRefUnchecked,
    // ---- receivers: policy (§7.3, §8 steps 3-5) -------------------------------------------
    /// The suite allowlist is not applied (§8 step 3).
    NoSuiteAllowlist,
    /// The mode allowlist is not applied (§8 step 5).
    NoModeAllowlist,
    /// MAC mode through a group or symmetric key without the opt-in (§6.4).
    MacViaSharedKeyAccepted,
    /// The receiver's metadata and payload limits are not applied (§7.3).
    NoReceiverLimits,
    /// Revocation is never checked (keyring.md §2 step 1).
    NoRevocationCheck,
    /// A trusted key's validity period is never checked (keyring.md §2 step 3).
    NoKeyValidityCheck,
    // ---- receivers: cryptography and time (§5, §6, §8 steps 4-10) --------------------------
    /// The block's identity signature is not verified (§5.3, §8 step 4d).
    NoBlockSignatureCheck,
    /// The unwrapped EK is not compared with the header's commitment (§5.4, §8 step 4e).
    NoKeyCommitmentCheck,
    /// The per-message authenticator (signature or MAC list) is not verified (§8 step 9).
    NoAuthenticatorCheck,
    /// No time check at all (§8 step 6).
    NoTimeCheck,
    /// Neither the session's limits nor the receiver's caps on sessions (§8 step 7).
    NoSessionLimits,
    // ---- receivers: the order and the steps of §8 ----------------------------------------
    /// `|timestamp - now| >= skew` is clock skew (spec §8 step 6).
    SkewInclusive,
    /// An inline block is always established, never looked up by its header hash (§8 step 4).
    NoCacheForInlineBlocks,
    /// An inline block whose header is cached is not verified again, even when its bytes
    /// differ from the block verified before (§6.1, §8 step 4).
    KnownBlocksNotReverified,
    /// The authenticator is checked before time (§8 step 9 before step 6).
    AuthenticatorBeforeTime,
    /// The message limit is checked before time (§8 step 7 before step 6).
    LimitsBeforeTime,
    /// Time is checked before the sender and mode re-checks (§8 step 6 before step 5).
    TimeBeforeSender,
    /// Step 5's re-checks are skipped for cached sessions.
    NoRecheckOfCachedSessions,
    /// Time is checked before an inline session is established (§8 step 6 before step 4).
    TimeBeforeEstablish,
    // ---- receivers: the replay store (the broken stores of `src/vectors/mod.rs`) ---------
    /// The replay store's `expires_at` is the session's expiry, without the skew
    /// (replay.md §1.1).
    StoreExpiresWithoutSkew,
    /// A replay window of 64 (replay.md §3 requires W >= 1024).
    Window64,
    /// No read-only replay check before the authenticator (§8 step 8).
    NoReadOnlyReplayCheck,
    /// The replay store accepts everything (replay.md §3, §8 steps 8 and 11).
    NoReplayCheck,
    /// One-shot sessions keyed by `(sender, session, nonce)`: a second message with another
    /// nonce is accepted (replay.md §4; the code before issue 14).
    OneShotByNonce,
    /// One-shot sessions are not tracked at all: "a session of one message needs no window"
    /// (replay.md §4).
    OneShotNotTracked,
    // ---- legacy input --------------------------------------------------------------------
    /// Legacy JSON is recognised only when `{` is the first byte, not after JSON white space
    /// (legacy-v2.md §2).
    LegacyBraceFirstOnly,
    /// Legacy input accepted without the opt-in (legacy-v2.md §3 step 1).
    LegacyOptInIgnored,
    /// Any `oslo.version` accepted, even one that is not MAJOR.MINOR (legacy-v2.md §3).
    LegacyVersionUnchecked,
    /// Members besides `oslo.version` and `oslo.message` are ignored (legacy-v2.md §3).
    LegacyExtraMembersIgnored,
    // ---- key strings (§2.4) --------------------------------------------------------------
    /// No checksum check.
    NoKeyChecksum,
    /// The checksum is computed over the payload alone, without the prefix.
    ChecksumWithoutPrefix,
    /// `=` padding accepted.
    KeyPaddingAccepted,
    /// Non-zero trailing bits in the last character accepted.
    KeyTrailingBitsAccepted,
    /// The standard alphabet (`+`, `/`) accepted besides base64url's (`-`, `_`).
    KeyEitherAlphabet,
    /// A forgiving base64 decoder (what `base64.urlsafe_b64decode` after re-padding does in
    /// Python): either alphabet, padding optional, trailing bits ignored.
    ForgivingBase64,
    /// The prefix is skipped by the length of the asked kind's prefix, never compared.
    NoPrefixCheck,
    /// Any known prefix is accepted for any asked kind; the payload is read as the asked
    /// kind's.
    NoKindCheck,
    /// No length check: the last 4 decoded bytes are the checksum, the rest the payload.
    NoKeyLengthCheck,
    /// No white space trimmed around a key string.
    KeyStringNotTrimmed,
    /// The string is checked (prefix, base64url, length, checksum) but the key in it is
    /// kept as bytes, never validated as a point (the key-string verifier of
    /// `src/vectors/keystrings.rs`).
    UncheckedKeyBytes,
    // ---- keyring files (keyring.md §3) ---------------------------------------------------
    /// A line the reader does not understand is skipped instead of refusing the keyring
    /// (all or nothing).
    KeyringSkipsBadLines,
    /// Lines split on LF only: a CR stays at the end of the last word.
    KeyringLfOnly,
    /// Comments only at the start of a line; indented lines are not trimmed.
    KeyringNoIndent,
    /// An empty keyring (no `trust` and no `revoke` line) is refused.
    KeyringEmptyRefused,
    /// `revoke` takes lower-case hex digits only.
    KeyringRevokeLowerCaseOnly,
    /// The same key may be trusted on two lines (the later line wins).
    KeyringDuplicateKeys,
    /// An option given twice: the later one wins.
    KeyringOptionTwice,
    /// `valid-until` may equal `valid-from`.
    KeyringUntilMayEqualFrom,
    /// Unknown options are ignored.
    KeyringUnknownOptionsIgnored,
    /// Unknown directives are ignored.
    KeyringUnknownDirectivesIgnored,
    /// Words after a `revoke` line's key id are ignored.
    KeyringRevokeTrailingWords,
    // ---- sealers (§5.6, §6.4) ------------------------------------------------------------
    /// MAC mode to a group or symmetric key without the opt-in is not refused.
    SealerAllowsMacToGroup,
    /// MAC mode to a group or symmetric key is refused even with the opt-in.
    SealerIgnoresMacOptIn,
    /// Group and symmetric recipients are refused in every mode, not only in MAC mode.
    SealerRefusesGroupsInEveryMode,
    /// A sealer with no recipient is built.
    SealerAllowsNoRecipients,
    /// Duplicate recipients are not refused.
    SealerAllowsDuplicates,
    /// Recipients are distinct when their keys differ, not their key ids.
    SealerDuplicatesByKey,
    /// `max_messages = 0` is not refused.
    SealerAllowsZeroMessages,
    /// `max_messages` is not capped at 2^48.
    SealerNoMessageCap,
    /// `max_messages = 2^48` is refused too (`>=` for `>`).
    SealerMessageCapExclusive,
    /// A payload over `max_bytes` is sealed (the session's byte limit is never checked
    /// against one payload).
    SealerNoPayloadCheck,
    /// A payload of exactly `max_bytes` is refused (`>=` for `>`).
    SealerPayloadLimitExclusive,
    // ---- receivers: the post-quantum suite 2 (issue 15) --------------------------------
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

#[cfg(feature = "vectors")]
pub use crate::sign::hook::set_sign_hook;
