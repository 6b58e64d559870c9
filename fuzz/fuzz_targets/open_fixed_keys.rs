//! Fuzz target `open_fixed_keys`: see `fuzzing::open_fixed_keys` for the invariants it checks.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::open_fixed_keys(data));
