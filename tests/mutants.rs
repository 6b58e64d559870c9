//! Deliberately broken implementations (`rpcseal::mutant`) against the vectors (issue 14,
//! items 6-12): the honest implementation passes every vector; every mutant fails the cases
//! listed for it; and every case in scope (each case of the vector kinds issue 14 added, and
//! each case it added to the older files) is failed by at least one mutant, or carries a
//! recorded reason. A regenerated file that loses a case a mutant needs, or a new case that
//! no wrong implementation fails (a vector that pins nothing), fails this test.
//!
//! `cargo test -p rpcseal --test mutants -- --ignored --nocapture` prints the whole kill
//! matrix (every mutant against every case in scope).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rpcseal::mutant::Mutant;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Files whose every case is in scope.
const WHOLE_FILES: &[&str] = &[
    "v3/keys/key-strings.json",
    "v3/keys/keyring-text.json",
    "v3/sealer/refusals.json",
    "v3/reconfigure/keyring-changes.json",
    "v3/negative/signatures.json",
    "v3/negative/order.json",
];

/// Cases issue 14 added to files that existed before it.
const ADDED_CASES: &[&str] = &[
    "v3/negative/structure.json::header-max-messages-over-2-48",
    "v3/negative/session.json::enc-u-p",
    "v3/negative/session.json::enc-bit-255-set",
    "v3/negative/session.json::cached-session-inline-block-bad-signature",
    "v3/negative/session.json::readdressed-block-opens-earlier-messages",
    "v3/negative/replay.json::one-shot-session-replayed",
    "v3/negative/replay.json::one-shot-session-second-message",
    "v3/negative/replay.json::inside-window-1000-behind",
    "v3/negative/replay.json::accepted-after-expiry-within-skew",
    "v3/negative/replay.json::forged-copy-of-accepted-message",
    "v3/negative/versions.json::legacy-v2-leading-whitespace-by-default",
    "v3/negative/versions.json::legacy-v2-leading-whitespace-opted-in",
];

fn in_scope(name: &str) -> bool {
    WHOLE_FILES
        .iter()
        .any(|f| name.strip_prefix(f).is_some_and(|r| r.starts_with("::")))
        || ADDED_CASES.contains(&name)
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

/// Each mutant and the cases it must fail (file paths under `v3/`). Every mutant has a row;
/// every case in scope appears in some row or in [`RECORDED`].
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
            "negative/signatures.json::verify-key-mixed-order",
            "negative/session.json::enc-u-p",
            "negative/session.json::enc-bit-255-set",
        ],
    ),
    (
        Mutant::NoSmallOrderKeyCheck,
        &[
            "keys/key-strings.json::x25519-u-zero",
            "keys/key-strings.json::ed25519-small-order",
        ],
    ),
    (
        Mutant::StockKeyDecoding,
        &[
            "keys/key-strings.json::ed25519-negative-zero",
            "keys/key-strings.json::ed25519-y-at-least-p",
            "negative/signatures.json::verify-key-y-at-least-p",
        ],
    ),
    (
        Mutant::NoMaxMessagesCapInHeader,
        &["negative/structure.json::header-max-messages-over-2-48"],
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
    (Mutant::NoKeyChecksum, &["keys/key-strings.json::checksum"]),
    (
        // Every key of every vector file is read from its key string, so this mutant fails
        // every envelope case as well; only the key-string and keyring controls are listed.
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
        ],
    ),
    (
        Mutant::NoKeyLengthCheck,
        &["keys/key-strings.json::truncated"],
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
];

/// Cases in scope that no mutant here fails, each with the reason it still pins a rule.
/// Empty today: every case in scope is failed by a named mutant.
const RECORDED: &[(&str, &str)] = &[];

fn full(name: &str) -> String {
    format!("v3/{name}")
}

#[test]
fn every_mutant_fails_its_cases_and_every_case_in_scope_fails_some_mutant() {
    // Every mutant has exactly one row.
    let rows: Vec<Mutant> = TABLE.iter().map(|(m, _)| *m).collect();
    for m in Mutant::ALL {
        assert_eq!(
            rows.iter().filter(|r| *r == m).count(),
            1,
            "{m:?}: one row in TABLE"
        );
    }
    // Every mutant fails every case listed for it (run on the files of those cases only).
    let mut problems = vec![];
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
    for (m, (listed, failed)) in &runs {
        assert!(!listed.is_empty(), "{m:?} pins no case");
        for c in listed {
            if !failed.contains(c) {
                problems.push(format!("{m:?} passes {c}"));
            }
        }
    }
    // Every case in scope is listed for some mutant, or recorded with a reason.
    let names = rpcseal::vectors::check_names(&dir()).expect("vectors");
    let killed: BTreeSet<String> = TABLE
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| full(c)))
        .collect();
    let recorded: BTreeSet<String> = RECORDED.iter().map(|(c, _)| full(c)).collect();
    for c in recorded.iter().chain(&killed) {
        if !names.contains(c) {
            problems.push(format!("{c}: no such case"));
        }
    }
    let unkilled: Vec<&String> = names
        .iter()
        .filter(|n| in_scope(n) && !killed.contains(*n) && !recorded.contains(*n))
        .collect();
    for c in &unkilled {
        problems.push(format!("{c}: no mutant fails it"));
    }
    for f in WHOLE_FILES {
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
