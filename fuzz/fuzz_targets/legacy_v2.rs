//! Fuzz target `legacy_v2`: see `fuzzing::legacy_v2` for the invariants it checks.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::legacy_v2(data));
