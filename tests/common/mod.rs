//! Scaffolding shared by the library's integration tests: the cast of keys, sealers and
//! openers most tests start from, and the gate for tests that need a real server.
//!
//! Each test file that uses it says `mod common;`; not every file uses every helper.
#![allow(dead_code)]

#[cfg(feature = "redis")]
pub mod procs;

use std::sync::Arc;

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::replay::ReplayStore;
use rpcseal::{ErrorKind, Identity, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};

/// The tests' clock: a fixed time well inside every key's validity.
pub const T0: u64 = 1_800_000_000;

/// Every mode, for tests that hold in each.
pub const MODES: [Mode; 3] = [Mode::Signed, Mode::Mac, Mode::SignOnly];

/// `me`'s opener, trusting `trust`, with the default (in-memory) replay store.
pub fn opener(me: &Identity, trust: &Identity) -> Opener {
    Opener::builder()
        .identity(me)
        .trust(trust.public())
        .build()
        .unwrap()
}

/// `me`'s opener, trusting `trust`, with the given replay store.
pub fn opener_with(me: &Identity, trust: &Identity, store: Arc<dyn ReplayStore>) -> Opener {
    Opener::builder()
        .identity(me)
        .trust(trust.public())
        .replay_store(store)
        .build()
        .unwrap()
}

/// The recipients list of `ids`' identities.
pub fn to(ids: &[&Identity]) -> Vec<Recipient> {
    ids.iter().map(|i| Recipient::from(i.public())).collect()
}

/// A sealer from `from` to the identities `ids`, in `mode`, with the default configuration.
pub fn sealer(from: &Identity, ids: &[&Identity], mode: Mode) -> Sealer {
    Sealer::new(from, &to(ids), SealerConfig::new(mode)).unwrap()
}

/// One envelope with no metadata, sealed at time `now`.
pub fn seal(s: &mut Sealer, payload: &[u8], now: u64) -> Vec<u8> {
    s.seal_deterministic(payload, &Metadata::new(), now, &mut UnwrapErr(SysRng))
        .unwrap()
}

/// The failure class of a result that must be an error.
pub fn kind<T>(r: Result<T, rpcseal::Error>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

/// The URL of the throwaway Redis server `.ci/run` starts (`RPCSEAL_TEST_REDIS_URL`).
///
/// Outside CI a test without it prints "skipped" and returns `None`; under `CI=true` a test
/// whose server is missing fails: CI never passes by skipping.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("RPCSEAL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: RPCSEAL_TEST_REDIS_URL is not set under CI=true")
        }
        _ => {
            println!("skipped {test}: RPCSEAL_TEST_REDIS_URL is not set");
            None
        }
    }
}
