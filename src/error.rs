//! Errors: [`Error`] for input that was rejected (hostile, damaged, stale or not for us),
//! [`Misuse`] for caller misuse when sealing, [`KeyError`] for key strings and files.
//!
//! The categories in [`ErrorKind`] are the failure classes of the negative test vectors
//! (spec/envelope-v3.md §9). Messages are written for a person and never contain key
//! material or any byte of a secret.

use std::borrow::Cow;
use std::fmt;

/// Why an envelope was rejected. Coarse on purpose: one category per rule of the spec that
/// a receiver applies, never a detail that would help an attacker tell two failures apart
/// where the spec says they must look the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not a well-formed envelope or session block: truncated, trailing bytes, wrong types,
    /// wrong lengths, non-canonical encodings, duplicate entries.
    Malformed,
    /// A size limit of the receiver's policy was exceeded (envelope, payload, metadata,
    /// recipient count).
    LimitExceeded,
    /// The envelope's version is not one this receiver implements.
    UnsupportedVersion,
    /// The algorithm suite id is not one this implementation knows.
    UnknownSuite,
    /// The suite is known but not on the receiver's allowlist.
    SuiteNotAllowed,
    /// The session's mode (signed, MAC, sign-only) is not allowed by the receiver's policy.
    ModeNotAllowed,
    /// None of the receiver's keys is among the session's recipients.
    NotForUs,
    /// The session's sender is not a sender this receiver trusts.
    UntrustedSender,
    /// The session block's identity signature does not verify.
    BadSignature,
    /// The receiver's entry in the session block could not be unwrapped (damaged, forged,
    /// or an all-zero or low-order key share).
    BadWrap,
    /// The session keys do not match the commitment the sender signed.
    KeyCommitment,
    /// The envelope refers to a session this receiver has not seen: ask for its block.
    UnknownSession,
    /// The per-message authenticator (signature or MAC) or the payload's AEAD tag is wrong.
    BadAuthenticator,
    /// The session or the message is not valid yet.
    NotYetValid,
    /// The session or the message has expired.
    Expired,
    /// The message's timestamp is further from the receiver's clock than the allowed skew.
    ClockSkew,
    /// The message is past the session's message or byte limit.
    SessionLimit,
    /// The message was accepted before.
    Replayed,
    /// The replay state cannot be consulted (unreachable, lost, full): fail closed.
    ReplayUnavailable,
    /// A legacy (v2) envelope, refused because the policy does not accept unauthenticated
    /// legacy input (or the caller used [`crate::Opener::open`], which only returns
    /// verified messages).
    LegacyNotAllowed,
    /// The sender's identity key has been revoked.
    Revoked,
    /// Strict in-order delivery ([`crate::Policy::strict_order`]): a message before this
    /// one in its session is missing (dropped, or overtaken by this one).
    OutOfOrder,
}

impl ErrorKind {
    /// The stable snake_case name used by the test vectors' `failure` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::UnknownSuite => "unknown_suite",
            ErrorKind::SuiteNotAllowed => "suite_not_allowed",
            ErrorKind::ModeNotAllowed => "mode_not_allowed",
            ErrorKind::NotForUs => "not_for_us",
            ErrorKind::UntrustedSender => "untrusted_sender",
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::BadWrap => "bad_wrap",
            ErrorKind::KeyCommitment => "key_commitment",
            ErrorKind::UnknownSession => "unknown_session",
            ErrorKind::BadAuthenticator => "bad_authenticator",
            ErrorKind::NotYetValid => "not_yet_valid",
            ErrorKind::Expired => "expired",
            ErrorKind::ClockSkew => "clock_skew",
            ErrorKind::SessionLimit => "session_limit",
            ErrorKind::Replayed => "replayed",
            ErrorKind::ReplayUnavailable => "replay_unavailable",
            ErrorKind::LegacyNotAllowed => "legacy_not_allowed",
            ErrorKind::Revoked => "revoked",
            ErrorKind::OutOfOrder => "out_of_order",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Malformed,
        ErrorKind::LimitExceeded,
        ErrorKind::UnsupportedVersion,
        ErrorKind::UnknownSuite,
        ErrorKind::SuiteNotAllowed,
        ErrorKind::ModeNotAllowed,
        ErrorKind::NotForUs,
        ErrorKind::UntrustedSender,
        ErrorKind::BadSignature,
        ErrorKind::BadWrap,
        ErrorKind::KeyCommitment,
        ErrorKind::UnknownSession,
        ErrorKind::BadAuthenticator,
        ErrorKind::NotYetValid,
        ErrorKind::Expired,
        ErrorKind::ClockSkew,
        ErrorKind::SessionLimit,
        ErrorKind::Replayed,
        ErrorKind::ReplayUnavailable,
        ErrorKind::LegacyNotAllowed,
        ErrorKind::Revoked,
        ErrorKind::OutOfOrder,
    ];

    fn summary(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "the envelope is malformed",
            ErrorKind::LimitExceeded => "the envelope exceeds a size limit",
            ErrorKind::UnsupportedVersion => "the envelope's version is not supported",
            ErrorKind::UnknownSuite => "the algorithm suite is unknown",
            ErrorKind::SuiteNotAllowed => "the algorithm suite is not allowed by policy",
            ErrorKind::ModeNotAllowed => "the session's mode is not allowed by policy",
            ErrorKind::NotForUs => "the envelope is not addressed to any of our keys",
            ErrorKind::UntrustedSender => "the sender is not trusted",
            ErrorKind::BadSignature => "the session block's signature is invalid",
            ErrorKind::BadWrap => "our entry in the session block could not be unwrapped",
            ErrorKind::KeyCommitment => "the session keys do not match the signed commitment",
            ErrorKind::UnknownSession => "the envelope refers to an unknown session",
            ErrorKind::BadAuthenticator => "the message failed authentication",
            ErrorKind::NotYetValid => "the session or message is not valid yet",
            ErrorKind::Expired => "the session or message has expired",
            ErrorKind::ClockSkew => "the message's timestamp is outside the allowed clock skew",
            ErrorKind::SessionLimit => "the message is past the session's limits",
            ErrorKind::Replayed => "the message is a replay",
            ErrorKind::ReplayUnavailable => "the replay state is unavailable",
            ErrorKind::LegacyNotAllowed => "legacy (v2) envelopes are not accepted here",
            ErrorKind::Revoked => "the sender's key is revoked",
            ErrorKind::OutOfOrder => "the message is out of order in a strictly ordered session",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An envelope, session block or legacy message was rejected.
///
/// [`Error::kind`] gives the category; `Display` gives a sentence for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: Cow<'static, str>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            detail: detail.into(),
        }
    }

    /// The category of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail sentence (never contains secret material).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.summary(),
            self.kind,
            self.detail
        )
    }
}

impl std::error::Error for Error {}

/// The caller asked for something the library refuses to do. Distinct from [`Error`]:
/// nothing hostile happened, the program is wrong or misconfigured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// A session needs at least one recipient.
    #[error("a session needs at least one recipient")]
    NoRecipients,
    /// More recipients than the format or the configuration allows.
    #[error("{count} recipients exceed the limit of {limit}")]
    TooManyRecipients {
        /// Recipients given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The same recipient key was given twice.
    #[error("the same recipient key was given twice")]
    DuplicateRecipient,
    /// The payload is larger than the configured maximum or the session byte limit.
    #[error("a payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// Metadata breaks a rule: empty key, too many entries, too many bytes.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(&'static str),
    /// MAC mode to a group key or a symmetric key proves nothing about which holder of the
    /// key sent a message (spec §6.4).
    #[error(
        "MAC mode to a group or symmetric key cannot tell the key's holders apart; use signed \
         mode, or opt in with SealerConfig::dangerous_allow_mac_to_group"
    )]
    MacToGroup,
    /// The configuration's lifetime or limits are unusable.
    #[error("invalid session configuration: {0}")]
    InvalidConfig(&'static str),
    /// A legacy message to wrap is not a JSON object.
    #[error("invalid legacy message: {0}")]
    InvalidLegacyMessage(&'static str),
    /// Post-quantum sessions are required and a recipient (an identity or a group key) has
    /// no X-Wing key (spec/envelope-v3.md §5.6).
    #[error(
        "post-quantum sessions are required, and a recipient has no X-Wing key: give its \
         rpcseal-pub-id-xwing: (or -group-xwing:) key, made with rpcseal keygen --pq"
    )]
    NotPostQuantum,
    /// Re-addressing is only possible in signed and sign-only modes.
    #[error(
        "a MAC-mode session cannot be re-addressed (its tags are per recipient): start a new \
         session"
    )]
    ReaddressMac,
    /// An opener was built without any key to open with.
    #[error("an opener needs at least one identity or group key")]
    NoKeys,
    /// An opener was built without any trusted sender.
    #[error("an opener needs at least one trusted sender")]
    NoTrustedSenders,
    /// The replay store's loss margin is smaller than the policy's clock skew: after a loss
    /// of state its watermark would not cover every message accepted before
    /// (spec/replay.md §6.4).
    #[error(
        "the replay store's loss margin ({margin} s) is smaller than the clock skew ({skew} s): \
         raise the margin to at least the skew plus the clock difference between receivers"
    )]
    LossMarginBelowSkew {
        /// The store's margin, seconds.
        margin: u64,
        /// The policy's skew, seconds.
        skew: u64,
    },
    /// The operating system's clock is before 1970 or otherwise unusable.
    #[error("the system clock is unusable")]
    Clock,
}

/// A key string or key file could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text does not start with any rpcseal key prefix.
    #[error("not an rpcseal key: expected a string starting with one of {expected}")]
    UnknownPrefix {
        /// The prefixes that would have been accepted.
        expected: &'static str,
    },
    /// A valid key of another kind than the one asked for.
    #[error("this is {found}, but {expected} is needed here")]
    WrongKind {
        /// What the string holds.
        found: &'static str,
        /// What was asked for.
        expected: &'static str,
    },
    /// Characters outside the key alphabet.
    #[error("the key contains characters that are not valid base64url")]
    Encoding,
    /// Wrong length: usually a truncated copy and paste.
    #[error("the key has the wrong length ({found} bytes, expected {expected}): is it truncated?")]
    Length {
        /// Decoded length.
        found: usize,
        /// Expected length.
        expected: usize,
    },
    /// The checksum does not match: a typo or a damaged copy.
    #[error("the key's checksum does not match: it was mistyped or damaged")]
    Checksum,
    /// The bytes decode but are not a usable key (for example a low-order X25519 point).
    #[error("the key is not a valid {0}")]
    Invalid(&'static str),
    /// The Ed25519 public key is refused: not canonical, not a point, or not of prime order.
    #[error("the key is not a valid Ed25519 public key: {0}")]
    InvalidEd25519(&'static str),
}
