//! Deliberately broken receivers (`rpcseal::mutant`), each failing some vector: the
//! vectors reject every implementation that breaks one of these rules (issue 14, items
//! 6-12). A vector that passes on today's code and on every mutant here pins nothing; each
//! mutant lists the vectors that must catch it, so a regenerated file that loses one of
//! them fails this test.

use std::path::Path;

use rpcseal::mutant::Mutant;

fn failures(m: Option<Mutant>) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let report = rpcseal::vectors::verify_with(&dir, m);
    report.failures.into_iter().map(|(name, _)| name).collect()
}

#[test]
fn every_mutant_fails_the_vectors_that_pin_its_rule() {
    assert_eq!(failures(None), Vec::<String>::new(), "the real receiver");
    let table: &[(Mutant, &[&str])] = &[
        (
            Mutant::LenientSignatures,
            &[
                "v3/negative/signatures.json::message-signature-r-plus-order-2-point",
                "v3/negative/signatures.json::message-signature-s-plus-l",
                "v3/negative/signatures.json::message-signature-small-order-r",
                "v3/negative/signatures.json::message-signature-r-negative-zero",
                "v3/negative/signatures.json::block-signature-r-plus-order-2-point",
            ],
        ),
        (
            Mutant::SmallOrderOnlyKeyCheck,
            &["v3/negative/signatures.json::verify-key-mixed-order"],
        ),
        (
            Mutant::SkewInclusive,
            &["v3/negative/order.json::exact-skew-is-fresh"],
        ),
        (
            Mutant::NoCacheForInlineBlocks,
            &["v3/negative/session.json::readdressed-block-opens-earlier-messages"],
        ),
        (
            Mutant::AuthenticatorBeforeTime,
            &[
                "v3/negative/order.json::not-yet-valid-and-bad-authenticator",
                "v3/negative/order.json::clock-skew-and-bad-authenticator",
            ],
        ),
        (
            Mutant::LimitsBeforeTime,
            &["v3/negative/order.json::clock-skew-and-seq-past-limit"],
        ),
        (
            Mutant::TimeBeforeSender,
            &["v3/reconfigure/keyring-changes.json::revoked-and-expired-cached-session"],
        ),
        (
            Mutant::NoRecheckOfCachedSessions,
            &[
                "v3/reconfigure/keyring-changes.json::revoked-after-session-cached",
                "v3/reconfigure/keyring-changes.json::untrusted-after-session-cached",
                "v3/reconfigure/keyring-changes.json::key-validity-ends-after-session-cached",
            ],
        ),
        (
            Mutant::StoreExpiresWithoutSkew,
            &["v3/negative/replay.json::accepted-after-expiry-within-skew"],
        ),
        (
            Mutant::Window64,
            &["v3/negative/replay.json::inside-window-1000-behind"],
        ),
        (
            Mutant::TimeBeforeEstablish,
            &[
                "v3/negative/order.json::revoked-and-expired",
                "v3/negative/order.json::mode-not-allowed-and-expired",
            ],
        ),
        (
            Mutant::LenientKeyStrings,
            &[
                "v3/keys/key-strings.json::padding",
                "v3/keys/key-strings.json::non-zero-trailing-bits",
                "v3/keys/key-strings.json::checksum",
                "v3/pq/keys/key-strings.json::checksum-xwing",
            ],
        ),
        (
            Mutant::NoCanonicalKeyChecks,
            &[
                "v3/keys/key-strings.json::x25519-bit-255-set",
                "v3/keys/key-strings.json::x25519-u-p-plus-9",
                "v3/keys/key-strings.json::ed25519-mixed-order",
                "v3/negative/signatures.json::verify-key-mixed-order",
                "v3/negative/session.json::enc-u-p",
                "v3/negative/session.json::enc-bit-255-set",
                "v3/pq/keys/key-strings.json::mlkem-coefficient-q",
                "v3/pq/keys/key-strings.json::mlkem-coefficient-4095",
                "v3/pq/keys/key-strings.json::xwing-x25519-bit-255-set",
            ],
        ),
        (
            Mutant::NoReadOnlyReplayCheck,
            &["v3/negative/replay.json::forged-copy-of-accepted-message"],
        ),
        // Issue 15: the rules of the post-quantum suite 2.
        (
            Mutant::AnyEntryKindInAnySuite,
            &[
                "v3/pq/negative/suite-2.json::x25519-wrap-in-suite-2-session",
                "v3/pq/negative/suite-2.json::xwing-wrap-in-suite-1-session",
            ],
        ),
        (
            Mutant::NoEncLengthCheck,
            &[
                "v3/pq/negative/suite-2.json::xwing-enc-1119-bytes",
                "v3/pq/negative/suite-2.json::xwing-enc-1121-bytes",
                "v3/pq/negative/suite-2.json::xwing-enc-32-bytes",
            ],
        ),
        (
            Mutant::IgnoreRequirePq,
            &[
                "v3/pq/negative/suite-2.json::downgrade-sender-requires-pq",
                "v3/pq/negative/suite-2.json::downgrade-sender-requires-pq-cached",
            ],
        ),
        (
            Mutant::NoEnvelopeSuiteCheck,
            &[
                "v3/pq/negative/suite-2.json::envelope-suite-1-in-suite-2-session",
                "v3/pq/negative/suite-2.json::envelope-suite-2-in-suite-1-session",
                "v3/pq/negative/suite-2.json::envelope-suite-differs-from-cached-session",
            ],
        ),
        (
            Mutant::NoPqRecipientLimit,
            &["v3/pq/negative/suite-2.json::pq-recipients-over-limit"],
        ),
    ];
    for (m, must) in table {
        let failed = failures(Some(*m));
        for name in *must {
            assert!(
                failed.iter().any(|f| f == name),
                "{m:?} passes {name}; it failed only {failed:?}"
            );
        }
    }
}
