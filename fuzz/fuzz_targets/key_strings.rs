//! Fuzz target `key_strings`: see `fuzzing::key_strings` for the invariants it checks.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::key_strings(data));
