//! Deliberately broken implementations (`rpcseal::mutant`) against the vectors (issue 14,
//! items 6-12). Three claims, each a test:
//! - the honest implementation passes every vector;
//! - every mutant fails every case listed for it in [`TABLE`];
//! - every case outside `v3/positive/` is failed by at least one mutant, or is listed in
//!   [`UNTIED`] with the reason no plausible one-rule mistake accepts it. Cases of the vector
//!   kinds issue 14 added, and the cases it added to older files, may not be untied.
//!
//! A regenerated file that loses a case a mutant needs, or a new case that no wrong
//! implementation fails (a vector that pins nothing), fails here, listing the cases.
//! `cargo test -p rpcseal --test mutants -- --ignored --nocapture` prints the whole kill
//! matrix (every mutant against every case in scope).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rpcseal::mutant::Mutant;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Every case outside the positive folders (`v3/positive/` and any later `v3/*/positive/`)
/// is in scope.
fn in_scope(name: &str) -> bool {
    name.starts_with("v3/") && !name.split("::").next().unwrap_or("").contains("/positive/")
}

/// Files issue 14 added: none of their cases may be untied.
const ISSUE_14_FILES: &[&str] = &[
    "v3/keys/key-strings.json",
    "v3/keys/keyring-text.json",
    "v3/sealer/refusals.json",
    "v3/reconfigure/keyring-changes.json",
    "v3/negative/signatures.json",
    "v3/negative/order.json",
];

/// Cases issue 14 added to files that existed before it: none may be untied.
const ISSUE_14_CASES: &[&str] = &[
    "v3/negative/structure.json::header-max-messages-over-2-48",
    "v3/negative/session.json::enc-u-p",
    "v3/negative/session.json::enc-bit-255-set",
    "v3/negative/session.json::cached-session-inline-block-bad-signature",
    "v3/negative/session.json::readdressed-block-opens-earlier-messages",
    "v3/negative/replay.json::one-shot-session-second-message",
    "v3/negative/replay.json::inside-window-1000-behind",
    "v3/negative/replay.json::accepted-after-expiry-within-skew",
    "v3/negative/replay.json::forged-copy-of-accepted-message",
    "v3/negative/versions.json::legacy-v2-leading-whitespace-by-default",
    "v3/negative/versions.json::legacy-v2-leading-whitespace-opted-in",
];

fn from_issue_14(name: &str) -> bool {
    ISSUE_14_FILES
        .iter()
        .any(|f| name.strip_prefix(f).is_some_and(|r| r.starts_with("::")))
        || ISSUE_14_CASES.contains(&name)
}

/// The cases mutant `m` fails, among those `keep` selects.
fn failures(m: Option<Mutant>, keep: impl Fn(&str) -> bool) -> BTreeSet<String> {
    rpcseal::vectors::verify_matching(&dir(), m, keep)
        .failures
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Runs `f` for every mutant on two threads (the switch is per thread).
fn per_mutant<T: Send>(f: impl Fn(Mutant) -> T + Sync) -> Vec<(Mutant, T)> {
    let (a, b) = Mutant::ALL.split_at(Mutant::ALL.len() / 2);
    std::thread::scope(|s| {
        let f = &f;
        let other = s.spawn(move || b.iter().map(|&m| (m, f(m))).collect::<Vec<_>>());
        let mut out: Vec<_> = a.iter().map(|&m| (m, f(m))).collect();
        out.extend(other.join().expect("no panic"));
        out
    })
}

#[test]
fn the_honest_implementation_passes_every_vector() {
    assert_eq!(failures(None, |_| true), BTreeSet::new());
}

/// Each mutant and the cases it must fail (paths under `v3/`). Every mutant has a row.
const TABLE: &[(Mutant, &[&str])] = &[
    (
        Mutant::LenientSignatures,
        &[
            "negative/signatures.json::message-signature-r-plus-order-2-point",
            "negative/signatures.json::message-signature-s-plus-l",
            "negative/signatures.json::message-signature-small-order-r",
            "negative/signatures.json::message-signature-r-negative-zero",
            "negative/signatures.json::block-signature-r-plus-order-2-point",
        ],
    ),
    (
        Mutant::SmallOrderOnlyKeyCheck,
        &["negative/signatures.json::verify-key-mixed-order"],
    ),
    (
        Mutant::NoCanonicalKeyChecks,
        &[
            "keys/key-strings.json::x25519-bit-255-set",
            "keys/key-strings.json::x25519-u-p-plus-9",
            "keys/key-strings.json::ed25519-mixed-order",
            "keys/keyring-text.json::non-canonical-key",
            "negative/session.json::enc-u-p",
            "negative/session.json::enc-bit-255-set",
            "negative/signatures.json::verify-key-mixed-order",
            "pq/keys/key-strings.json::mlkem-coefficient-q",
            "pq/keys/key-strings.json::mlkem-coefficient-4095",
            "pq/keys/key-strings.json::xwing-x25519-bit-255-set",
        ],
    ),
    (
        Mutant::NoSmallOrderKeyCheck,
        &[
            "keys/key-strings.json::x25519-u-zero",
            "keys/key-strings.json::ed25519-small-order",
            "negative/structure.json::verify-key-small-order",
            "pq/keys/key-strings.json::xwing-x25519-u-zero",
        ],
    ),
    (
        Mutant::StockKeyDecoding,
        &[
            "keys/key-strings.json::x25519-bit-255-set",
            "keys/key-strings.json::x25519-u-p-plus-9",
            "keys/key-strings.json::x25519-u-zero",
            "keys/key-strings.json::ed25519-small-order",
            "keys/key-strings.json::ed25519-negative-zero",
            "keys/key-strings.json::ed25519-y-at-least-p",
            "keys/key-strings.json::ed25519-mixed-order",
            "keys/keyring-text.json::non-canonical-key",
            "negative/structure.json::verify-key-small-order",
            "negative/session.json::enc-u-p",
            "negative/session.json::enc-bit-255-set",
            "negative/signatures.json::verify-key-mixed-order",
            "negative/signatures.json::verify-key-y-at-least-p",
        ],
    ),
    (
        Mutant::NoMaxMessagesCapInHeader,
        &["negative/structure.json::header-max-messages-over-2-48"],
    ),
    (
        Mutant::NonShortestAccepted,
        &[
            "negative/encoding.json::version-uint8",
            "negative/encoding.json::suite-uint16",
            "negative/encoding.json::seq-uint8",
            "negative/encoding.json::timestamp-uint64",
            "negative/encoding.json::session-ref-bin16",
            "negative/encoding.json::body-bin32",
            "negative/encoding.json::session-block-bin32",
            "negative/encoding.json::metadata-map16",
            "negative/encoding.json::metadata-key-str8",
            "negative/encoding.json::envelope-array16",
            "negative/encoding.json::header-not-before-uint64",
            "negative/encoding.json::header-sender-bin16",
            "negative/encoding.json::recipients-array16",
            "negative/encoding.json::entry-kind-uint8",
        ],
    ),
    (
        Mutant::StrAsBin,
        &["negative/encoding.json::header-session-id-is-str"],
    ),
    (
        Mutant::TrailingBytesAccepted,
        &[
            "negative/structure.json::trailing-zero-byte",
            "negative/structure.json::trailing-second-envelope",
            "negative/structure.json::block-trailing-byte",
        ],
    ),
    (
        Mutant::AnyVersionAccepted,
        &[
            "negative/policy.json::envelope-version-4",
            "negative/policy.json::envelope-version-2",
            "negative/policy.json::envelope-version-0",
            "negative/policy.json::header-version-4",
            "negative/bitflips.json::signed-version",
            "negative/bitflips.json::mac-version",
            "negative/bitflips.json::sign-only-version",
        ],
    ),
    (
        Mutant::UnknownSuitesAccepted,
        &[
            "negative/policy.json::envelope-suite-3",
            "negative/policy.json::envelope-suite-65535",
            "negative/policy.json::header-suite-3",
            "negative/bitflips.json::signed-suite",
            "negative/bitflips.json::mac-suite",
            "negative/bitflips.json::sign-only-suite",
        ],
    ),
    (
        Mutant::MetadataOrderUnchecked,
        &[
            "negative/encoding.json::metadata-unsorted",
            "negative/encoding.json::metadata-duplicate-key",
        ],
    ),
    (
        Mutant::EmptyMetadataKeyAccepted,
        &["negative/encoding.json::metadata-empty-key"],
    ),
    (
        Mutant::CoercingReader,
        &[
            "negative/encoding.json::seq-is-true",
            "negative/encoding.json::seq-negative-fixint",
            "negative/encoding.json::timestamp-float64",
        ],
    ),
    (
        Mutant::HeaderRulesUnchecked,
        &[
            "negative/structure.json::header-expires-equals-not-before",
            "negative/structure.json::header-max-messages-zero",
        ],
    ),
    (
        Mutant::BlockRulesUnchecked,
        &[
            "negative/structure.json::zero-recipients",
            "negative/structure.json::entry-unknown-kind-4",
            "negative/structure.json::duplicate-recipient",
        ],
    ),
    (
        Mutant::SessionRefUnchecked,
        &[
            "negative/structure.json::session-ref-not-matching-block",
            "negative/bitflips.json::signed-session-ref",
            "negative/bitflips.json::signed-header-session-id",
            "negative/bitflips.json::mac-session-ref",
            "negative/bitflips.json::mac-header-session-id",
            "negative/bitflips.json::sign-only-session-ref",
            "negative/bitflips.json::sign-only-header-session-id",
        ],
    ),
    (
        Mutant::NoSuiteAllowlist,
        &[
            "negative/policy.json::suite-not-allowed",
            "pq/negative/suite-2.json::downgrade-receiver-requires-suite-2",
        ],
    ),
    (
        Mutant::NoModeAllowlist,
        &[
            "negative/policy.json::mode-signed-not-allowed",
            "negative/policy.json::mode-mac-not-allowed",
            "negative/policy.json::mode-sign-only-not-allowed",
            "negative/order.json::mode-not-allowed-and-expired",
        ],
    ),
    (
        Mutant::MacViaSharedKeyAccepted,
        &[
            "negative/policy.json::mac-via-group-key-without-opt-in",
            "negative/policy.json::mac-via-symmetric-key-without-opt-in",
        ],
    ),
    (
        Mutant::NoReceiverLimits,
        &[
            "negative/policy.json::payload-over-receiver-limit",
            "negative/policy.json::recipients-over-limit",
            "negative/policy.json::metadata-entries-over-limit",
            "negative/policy.json::metadata-bytes-over-limit",
        ],
    ),
    (
        Mutant::NoRevocationCheck,
        &[
            "reconfigure/keyring-changes.json::revoked-after-session-cached",
            "reconfigure/keyring-changes.json::revoked-and-expired-cached-session",
            "negative/order.json::revoked-and-expired",
            "negative/versions.json::sender-revoked",
        ],
    ),
    (
        Mutant::NoKeyValidityCheck,
        &[
            "reconfigure/keyring-changes.json::key-validity-ends-after-session-cached",
            "negative/versions.json::sender-key-ended",
            "negative/versions.json::sender-key-not-started",
        ],
    ),
    (
        Mutant::NoBlockSignatureCheck,
        &[
            "negative/session.json::block-signed-by-another-identity",
            "negative/session.json::block-signature-bit-flipped",
            "negative/session.json::cached-session-inline-block-bad-signature",
            "negative/signatures.json::block-signature-r-plus-order-2-point",
            "negative/bitflips.json::signed-entry-enc",
            "negative/bitflips.json::signed-block-signature",
            "negative/bitflips.json::signed-entry-wrapped",
            "negative/bitflips.json::mac-entry-enc",
            "negative/bitflips.json::mac-block-signature",
            "negative/bitflips.json::mac-entry-wrapped",
            "negative/bitflips.json::sign-only-entry-enc",
            "negative/bitflips.json::sign-only-block-signature",
        ],
    ),
    (
        Mutant::NoKeyCommitmentCheck,
        &[
            "negative/session.json::key-commitment-attack-signed",
            "negative/session.json::key-commitment-attack-mac",
        ],
    ),
    (
        Mutant::NoAuthenticatorCheck,
        &[
            "negative/structure.json::signature-63-bytes",
            "negative/structure.json::mac-list-missing-list-tag",
            "negative/session.json::mac-forged-by-recipient",
            "negative/session.json::mac-list-tag-flipped",
            "negative/session.json::signed-forged-by-recipient",
            "negative/signatures.json::message-signature-r-plus-order-2-point",
            "negative/signatures.json::message-signature-s-plus-l",
            "negative/signatures.json::message-signature-small-order-r",
            "negative/signatures.json::message-signature-r-negative-zero",
            "negative/bitflips.json::signed-timestamp",
            "negative/bitflips.json::signed-nonce",
            "negative/bitflips.json::signed-metadata-value",
            "negative/bitflips.json::signed-authenticator",
            "negative/bitflips.json::mac-timestamp",
            "negative/bitflips.json::mac-nonce",
            "negative/bitflips.json::mac-metadata-value",
            "negative/bitflips.json::mac-authenticator",
            "negative/bitflips.json::sign-only-seq",
            "negative/bitflips.json::sign-only-timestamp",
            "negative/bitflips.json::sign-only-nonce",
            "negative/bitflips.json::sign-only-metadata-value",
            "negative/bitflips.json::sign-only-body",
            "negative/bitflips.json::sign-only-authenticator",
        ],
    ),
    (
        Mutant::NoTimeCheck,
        &[
            "negative/order.json::not-yet-valid-and-bad-authenticator",
            "negative/order.json::clock-skew-and-bad-authenticator",
            "negative/order.json::clock-skew-and-seq-past-limit",
            "negative/time.json::session-not-yet-valid",
            "negative/time.json::timestamp-behind-clock",
            "negative/time.json::timestamp-ahead-of-clock",
            "negative/time.json::timestamp-before-not-before",
            "negative/time.json::timestamp-at-expires",
            "negative/time.json::zero-skew-one-second-late",
        ],
    ),
    (
        Mutant::NoSessionLimits,
        &[
            "negative/replay.json::seq-past-session-limit",
            "negative/replay.json::payload-over-session-byte-limit",
            "negative/replay.json::session-lifetime-over-receiver-limit",
            "negative/replay.json::session-max-messages-over-receiver-limit",
        ],
    ),
    (
        Mutant::SkewInclusive,
        &["negative/order.json::exact-skew-is-fresh"],
    ),
    (
        Mutant::NoCacheForInlineBlocks,
        &["negative/session.json::readdressed-block-opens-earlier-messages"],
    ),
    (
        Mutant::KnownBlocksNotReverified,
        &["negative/session.json::cached-session-inline-block-bad-signature"],
    ),
    (
        Mutant::AuthenticatorBeforeTime,
        &[
            "negative/order.json::not-yet-valid-and-bad-authenticator",
            "negative/order.json::clock-skew-and-bad-authenticator",
            "negative/order.json::clock-skew-and-seq-past-limit",
        ],
    ),
    (
        Mutant::LimitsBeforeTime,
        &["negative/order.json::clock-skew-and-seq-past-limit"],
    ),
    (
        Mutant::TimeBeforeSender,
        &["reconfigure/keyring-changes.json::revoked-and-expired-cached-session"],
    ),
    (
        Mutant::NoRecheckOfCachedSessions,
        &[
            "reconfigure/keyring-changes.json::revoked-after-session-cached",
            "reconfigure/keyring-changes.json::untrusted-after-session-cached",
            "reconfigure/keyring-changes.json::key-validity-ends-after-session-cached",
            "reconfigure/keyring-changes.json::revoked-and-expired-cached-session",
        ],
    ),
    (
        Mutant::TimeBeforeEstablish,
        &[
            "negative/order.json::revoked-and-expired",
            "negative/order.json::mode-not-allowed-and-expired",
        ],
    ),
    (
        Mutant::StoreExpiresWithoutSkew,
        &["negative/replay.json::accepted-after-expiry-within-skew"],
    ),
    (
        Mutant::Window64,
        &["negative/replay.json::inside-window-1000-behind"],
    ),
    (
        Mutant::NoReadOnlyReplayCheck,
        &["negative/replay.json::forged-copy-of-accepted-message"],
    ),
    (
        Mutant::NoReplayCheck,
        &[
            "negative/session.json::readdressed-block-opens-earlier-messages",
            "negative/order.json::exact-skew-is-fresh",
            "negative/replay.json::replayed-envelope",
            "negative/replay.json::tampered-then-original-then-replay",
            "negative/replay.json::replay-by-reference",
            "negative/replay.json::older-than-window",
            "negative/replay.json::reordered-within-window",
            "negative/replay.json::one-shot-session-replayed",
            "negative/replay.json::one-shot-session-second-message",
            "negative/replay.json::inside-window-1000-behind",
            "negative/replay.json::accepted-after-expiry-within-skew",
            "negative/replay.json::forged-copy-of-accepted-message",
        ],
    ),
    (
        Mutant::OneShotByNonce,
        &["negative/replay.json::one-shot-session-second-message"],
    ),
    (
        Mutant::OneShotNotTracked,
        &[
            "negative/replay.json::one-shot-session-replayed",
            "negative/replay.json::one-shot-session-second-message",
        ],
    ),
    (
        Mutant::LegacyBraceFirstOnly,
        &[
            "negative/versions.json::legacy-v2-leading-whitespace-by-default",
            "negative/versions.json::legacy-v2-leading-whitespace-opted-in",
        ],
    ),
    (
        Mutant::LegacyOptInIgnored,
        &[
            "negative/versions.json::legacy-v2-by-default",
            "negative/versions.json::legacy-v2-stripped-v3",
            "negative/versions.json::legacy-oslo-1.0-by-default",
            "negative/versions.json::legacy-v2-leading-whitespace-by-default",
        ],
    ),
    (
        Mutant::LegacyVersionUnchecked,
        &[
            "negative/versions.json::legacy-v2-newer-minor",
            "negative/versions.json::legacy-v2-other-major",
            "negative/versions.json::legacy-v2-version-not-digits",
        ],
    ),
    (
        Mutant::LegacyExtraMembersIgnored,
        &["negative/versions.json::legacy-v2-extra-member"],
    ),
    (
        Mutant::NoKeyChecksum,
        &[
            "keys/key-strings.json::checksum",
            "pq/keys/key-strings.json::checksum-xwing",
        ],
    ),
    (
        // Every key of every vector file is read from its key string, so this mutant fails
        // every case; only the accepted key strings and keyrings are listed.
        Mutant::ChecksumWithoutPrefix,
        &[
            "keys/key-strings.json::public-identity",
            "keys/key-strings.json::secret-identity",
            "keys/key-strings.json::public-group",
            "keys/key-strings.json::secret-group",
            "keys/key-strings.json::secret-symmetric",
            "keys/key-strings.json::recipient-group",
            "keys/key-strings.json::recipient-symmetric",
            "keys/key-strings.json::surrounding-whitespace",
            "keys/keyring-text.json::comments-and-blank-lines",
            "keys/keyring-text.json::crlf",
            "keys/keyring-text.json::revoke-upper-case",
            "pq/keys/key-strings.json::public-identity-xwing",
            "pq/keys/key-strings.json::secret-identity-xwing",
            "pq/keys/key-strings.json::public-group-xwing",
            "pq/keys/key-strings.json::secret-group-xwing",
            "pq/keys/key-strings.json::recipient-identity-xwing",
            "pq/keys/key-strings.json::recipient-group-xwing",
            "pq/keys/key-strings.json::mlkem-coefficient-q-minus-1",
        ],
    ),
    (
        Mutant::KeyPaddingAccepted,
        &["keys/key-strings.json::padding"],
    ),
    (
        Mutant::KeyTrailingBitsAccepted,
        &["keys/key-strings.json::non-zero-trailing-bits"],
    ),
    (
        Mutant::KeyEitherAlphabet,
        &["keys/key-strings.json::standard-alphabet-same-bytes"],
    ),
    (
        Mutant::ForgivingBase64,
        &[
            "keys/key-strings.json::padding",
            "keys/key-strings.json::non-zero-trailing-bits",
            "keys/key-strings.json::standard-alphabet",
            "keys/key-strings.json::standard-alphabet-same-bytes",
        ],
    ),
    (
        Mutant::NoPrefixCheck,
        &[
            "keys/key-strings.json::unknown-prefix",
            "keys/key-strings.json::prefix-wrong-case",
            "keys/key-strings.json::group-asked-as-identity",
            "keys/key-strings.json::secret-asked-as-public",
        ],
    ),
    (
        Mutant::NoKindCheck,
        &[
            "keys/key-strings.json::group-asked-as-identity",
            "keys/key-strings.json::secret-asked-as-public",
            "keys/key-strings.json::secret-as-recipient",
            "pq/keys/key-strings.json::group-xwing-asked-as-identity",
            "pq/keys/key-strings.json::secret-xwing-asked-as-public",
            "pq/keys/key-strings.json::public-xwing-asked-as-secret",
            "pq/keys/key-strings.json::secret-xwing-as-recipient",
        ],
    ),
    (
        Mutant::NoKeyLengthCheck,
        &[
            "keys/key-strings.json::truncated",
            "pq/keys/key-strings.json::truncated-xwing",
            "pq/keys/key-strings.json::classical-payload-under-xwing-prefix",
        ],
    ),
    (
        Mutant::KeyStringNotTrimmed,
        &["keys/key-strings.json::surrounding-whitespace"],
    ),
    (
        Mutant::UncheckedKeyBytes,
        &[
            "keys/key-strings.json::x25519-bit-255-set",
            "keys/key-strings.json::x25519-u-p-plus-9",
            "keys/key-strings.json::x25519-u-zero",
            "keys/key-strings.json::ed25519-small-order",
            "keys/key-strings.json::ed25519-negative-zero",
            "keys/key-strings.json::ed25519-y-at-least-p",
            "keys/key-strings.json::ed25519-mixed-order",
            "keys/key-strings.json::ed25519-not-on-curve",
        ],
    ),
    (
        Mutant::KeyringSkipsBadLines,
        &[
            "keys/keyring-text.json::same-key-twice",
            "keys/keyring-text.json::unknown-directive",
            "keys/keyring-text.json::option-twice",
            "keys/keyring-text.json::until-not-after-from",
            "keys/keyring-text.json::unknown-option",
            "keys/keyring-text.json::missing-key",
            "keys/keyring-text.json::short-key-id",
            "keys/keyring-text.json::revoke-trailing-word",
            "keys/keyring-text.json::non-canonical-key",
            "keys/keyring-text.json::secret-key",
        ],
    ),
    (Mutant::KeyringLfOnly, &["keys/keyring-text.json::crlf"]),
    (
        Mutant::KeyringNoIndent,
        &["keys/keyring-text.json::comments-and-blank-lines"],
    ),
    (
        Mutant::KeyringEmptyRefused,
        &["keys/keyring-text.json::empty"],
    ),
    (
        Mutant::KeyringRevokeLowerCaseOnly,
        &["keys/keyring-text.json::revoke-upper-case"],
    ),
    (
        Mutant::KeyringDuplicateKeys,
        &["keys/keyring-text.json::same-key-twice"],
    ),
    (
        Mutant::KeyringOptionTwice,
        &["keys/keyring-text.json::option-twice"],
    ),
    (
        Mutant::KeyringUntilMayEqualFrom,
        &["keys/keyring-text.json::until-not-after-from"],
    ),
    (
        Mutant::KeyringUnknownOptionsIgnored,
        &["keys/keyring-text.json::unknown-option"],
    ),
    (
        Mutant::KeyringUnknownDirectivesIgnored,
        &["keys/keyring-text.json::unknown-directive"],
    ),
    (
        Mutant::KeyringRevokeTrailingWords,
        &["keys/keyring-text.json::revoke-trailing-word"],
    ),
    (
        Mutant::SealerAllowsMacToGroup,
        &["sealer/refusals.json::mac-to-group"],
    ),
    (
        Mutant::SealerIgnoresMacOptIn,
        &["sealer/refusals.json::mac-to-group-opted-in"],
    ),
    (
        Mutant::SealerRefusesGroupsInEveryMode,
        &["sealer/refusals.json::signed-to-group"],
    ),
    (
        Mutant::SealerAllowsNoRecipients,
        &["sealer/refusals.json::no-recipients"],
    ),
    (
        Mutant::SealerAllowsDuplicates,
        &[
            "sealer/refusals.json::duplicate-recipient",
            "sealer/refusals.json::duplicate-key-id",
        ],
    ),
    (
        Mutant::SealerDuplicatesByKey,
        &["sealer/refusals.json::duplicate-key-id"],
    ),
    (
        Mutant::SealerAllowsZeroMessages,
        &["sealer/refusals.json::max-messages-zero"],
    ),
    (
        Mutant::SealerNoMessageCap,
        &["sealer/refusals.json::max-messages-over-2-48"],
    ),
    (
        Mutant::SealerMessageCapExclusive,
        &["sealer/refusals.json::max-messages-2-48"],
    ),
    (
        Mutant::SealerNoPayloadCheck,
        &["sealer/refusals.json::payload-over-max-bytes"],
    ),
    (
        Mutant::SealerPayloadLimitExclusive,
        &["sealer/refusals.json::payload-at-max-bytes"],
    ),
    // Issue 15: the post-quantum suite 2.
    (
        Mutant::AnyEntryKindInAnySuite,
        &[
            "pq/negative/suite-2.json::x25519-wrap-in-suite-2-session",
            "pq/negative/suite-2.json::xwing-wrap-in-suite-1-session",
        ],
    ),
    (
        Mutant::NoEncLengthCheck,
        &[
            "pq/negative/suite-2.json::xwing-enc-1119-bytes",
            "pq/negative/suite-2.json::xwing-enc-1121-bytes",
            "pq/negative/suite-2.json::xwing-enc-32-bytes",
        ],
    ),
    (
        Mutant::IgnoreRequirePq,
        &[
            "pq/negative/suite-2.json::downgrade-sender-requires-pq",
            "pq/negative/suite-2.json::downgrade-sender-requires-pq-cached",
        ],
    ),
    (
        Mutant::NoEnvelopeSuiteCheck,
        &[
            "pq/negative/suite-2.json::envelope-suite-1-in-suite-2-session",
            "pq/negative/suite-2.json::envelope-suite-2-in-suite-1-session",
            "pq/negative/suite-2.json::envelope-suite-differs-from-cached-session",
        ],
    ),
    (
        Mutant::NoPqRecipientLimit,
        &["pq/negative/suite-2.json::pq-recipients-over-limit"],
    ),
];

/// Cases in scope that no mutant here fails, with the reason (paths under `v3/`). All are
/// from before issue 14.
const UNTIED: &[(&str, &[&str])] = &[
    (
        "Suite 2 (issue 15): X-Wing rejects implicitly. A damaged ciphertext decapsulates to another shared secret and the wrap's AEAD open fails, which no implementation can skip and still get EK. They pin the class bad_wrap.",
        &[
            "pq/negative/suite-2.json::xwing-enc-mlkem-part-damaged",
            "pq/negative/suite-2.json::xwing-enc-x25519-part-damaged",
        ],
    ),
    (
        "Suite 2 (issue 15): no entry carries a key id the receiver holds (its X25519 key's id is not its X-Wing key's), so a receiver that matched entries by key id alone, or by kind alone, still finds none. It pins the class not_for_us.",
        &["pq/negative/suite-2.json::classical-receiver-not-for-us"],
    ),
    (
        "The payload AEAD rejects them: a flipped body, tag or sequence number (the AEAD nonce is the seq) fails the ChaCha20-Poly1305 open, which no implementation can skip and still decrypt. They pin the class bad_authenticator.",
        &[
            "negative/bitflips.json::mac-body",
            "negative/bitflips.json::mac-body-tag",
            "negative/bitflips.json::mac-seq",
            "negative/bitflips.json::signed-body",
            "negative/bitflips.json::signed-body-tag",
            "negative/bitflips.json::signed-seq",
        ],
    ),
    (
        "The HPKE or symmetric wrap fails to open (another header, index or key bound in, a flipped bit): an AEAD open no implementation can skip. They pin the class bad_wrap.",
        &[
            "negative/session.json::symmetric-commit-flipped",
            "negative/session.json::symmetric-wrong-key",
            "negative/session.json::wrap-for-another-header",
            "negative/session.json::wrap-for-another-index",
            "negative/session.json::wrap-to-another-key",
            "negative/session.json::wrapped-bit-flipped-and-signed",
        ],
    ),
    (
        "Low-order HPKE shares: the hpke crate refuses an all-zero Diffie-Hellman output itself (RFC 9180 §7.1.4), so no mutant of this code accepts them. They pin the class bad_wrap.",
        &[
            "negative/session.json::enc-all-zero",
            "negative/session.json::enc-order-8",
            "negative/session.json::enc-u-1",
            "negative/session.json::enc-u-p-minus-1",
        ],
    ),
    (
        "Nothing to continue with: no entry for our key id, no cached session, no key for the sender. They pin the class (not_for_us, unknown_session, untrusted_sender).",
        &[
            "negative/bitflips.json::mac-entry-key-id",
            "negative/bitflips.json::sign-only-entry-key-id",
            "negative/bitflips.json::signed-entry-key-id",
            "negative/session.json::not-for-us",
            "negative/session.json::unknown-session",
            "negative/session.json::untrusted-sender",
        ],
    ),
    (
        "Expired twice over: §8 step 6 and the replay store's expiry (replay.md §1.1) both reject them, so a mutant that drops one still fails them.",
        &[
            "negative/replay.json::replayed-after-session-expired",
            "negative/time.json::session-expired",
        ],
    ),
    (
        "Rejected by any reader, even one that breaks the rule: a truncated input, a length or count beyond the input, a wrong field count or fixed length or a type confusion misaligns or exhausts every later read, and a bad point, mode or nesting fails where it is used. They pin the class malformed (or unsupported_version) and §3's rule that each field is checked as it is read.",
        &[
            "negative/encoding.json::authenticator-length-claims-4-gib",
            "negative/encoding.json::body-is-str",
            "negative/encoding.json::body-length-claims-4-gib",
            "negative/encoding.json::deep-nesting-as-seq",
            "negative/encoding.json::deep-nesting-in-metadata",
            "negative/encoding.json::metadata-count-claims-4-billion",
            "negative/encoding.json::metadata-invalid-utf8",
            "negative/encoding.json::metadata-is-array",
            "negative/encoding.json::metadata-key-is-bin",
            "negative/encoding.json::metadata-str-claims-4-gib",
            "negative/encoding.json::nonce-is-array-of-ints",
            "negative/encoding.json::nonce-is-nil",
            "negative/encoding.json::recipients-count-claims-4-billion",
            "negative/encoding.json::session-block-is-ext",
            "negative/encoding.json::session-block-length-claims-4-gib",
            "negative/encoding.json::session-ref-is-str",
            "negative/structure.json::block-2-fields",
            "negative/structure.json::block-4-fields",
            "negative/structure.json::body-shorter-than-tag",
            "negative/structure.json::empty-input",
            "negative/structure.json::entry-3-fields",
            "negative/structure.json::entry-enc-31-bytes",
            "negative/structure.json::entry-wrapped-47-bytes",
            "negative/structure.json::envelope-11-fields",
            "negative/structure.json::envelope-9-fields",
            "negative/structure.json::header-10-fields",
            "negative/structure.json::header-12-fields",
            "negative/structure.json::header-commitment-in-sign-only-mode",
            "negative/structure.json::header-mode-4",
            "negative/structure.json::header-verify-key-31-bytes",
            "negative/structure.json::header-verify-key-in-mac-mode",
            "negative/structure.json::nonce-17-bytes",
            "negative/structure.json::session-ref-15-bytes",
            "negative/structure.json::truncated-after-array-header",
            "negative/structure.json::truncated-after-version",
            "negative/structure.json::truncated-in-authenticator",
            "negative/structure.json::truncated-in-body",
            "negative/structure.json::truncated-in-metadata",
            "negative/structure.json::truncated-in-session-block",
            "negative/structure.json::truncated-in-session-ref",
            "negative/structure.json::truncated-last-byte",
            "negative/structure.json::verify-key-not-a-point",
            "negative/versions.json::legacy-v2-message-not-object",
            "negative/versions.json::unknown-format",
        ],
    ),
];

fn full(name: &str) -> String {
    format!("v3/{name}")
}

#[test]
fn every_mutant_fails_its_cases_and_every_case_fails_some_mutant() {
    let rows: Vec<Mutant> = TABLE.iter().map(|(m, _)| *m).collect();
    for m in Mutant::ALL {
        assert_eq!(
            rows.iter().filter(|r| *r == m).count(),
            1,
            "{m:?}: one row in TABLE"
        );
    }
    // Every mutant fails every case listed for it (run on the files of those cases only).
    let runs = per_mutant(|m| {
        let listed: Vec<String> = TABLE
            .iter()
            .find(|(r, _)| *r == m)
            .map(|(_, cases)| cases.iter().map(|c| full(c)).collect())
            .unwrap_or_default();
        let files: BTreeSet<String> = listed
            .iter()
            .map(|c| c.split("::").next().unwrap_or("").to_owned())
            .collect();
        let failed = failures(Some(m), |name| {
            files.contains(name.split("::").next().unwrap_or(""))
        });
        (listed, failed)
    });
    let mut problems = vec![];
    for (m, (listed, failed)) in &runs {
        if listed.is_empty() {
            problems.push(format!("{m:?} pins no case"));
        }
        for c in listed {
            if !failed.contains(c) {
                problems.push(format!("{m:?} passes {c}"));
            }
        }
    }
    // Every case in scope is killed by some mutant, or untied with a reason.
    let names: BTreeSet<String> = rpcseal::vectors::check_names(&dir())
        .expect("vectors")
        .into_iter()
        .collect();
    let killed: BTreeSet<String> = TABLE
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| full(c)))
        .collect();
    let untied: BTreeSet<String> = UNTIED
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| full(c)))
        .collect();
    for c in killed.iter().chain(&untied) {
        if !names.contains(c) {
            problems.push(format!("{c}: no such case"));
        }
    }
    for c in &untied {
        if killed.contains(c) {
            problems.push(format!(
                "{c}: untied, but a mutant fails it: drop it from UNTIED"
            ));
        }
        if from_issue_14(c) {
            problems.push(format!("{c}: an issue-14 case must be failed by a mutant"));
        }
    }
    for c in names.iter().filter(|n| in_scope(n)) {
        if !killed.contains(c) && !untied.contains(c) {
            problems.push(format!("{c}: no mutant fails it"));
        }
    }
    for f in ISSUE_14_FILES {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("{f}::"))),
            "{f}: no cases"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
#[ignore = "prints the kill matrix; run with --ignored --nocapture"]
fn print_kill_matrix() {
    let names = rpcseal::vectors::check_names(&dir()).expect("vectors");
    let mut killers: BTreeMap<String, Vec<Mutant>> = names
        .iter()
        .filter(|n| in_scope(n))
        .map(|n| (n.clone(), vec![]))
        .collect();
    for (m, failed) in per_mutant(|m| failures(Some(m), in_scope)) {
        println!("{m:?}: {failed:?}");
        for f in failed {
            killers.entry(f).or_default().push(m);
        }
    }
    for (case, ms) in killers {
        println!("{case}\t{ms:?}");
    }
}
