//! Fuzz target `mutate_envelope`: see `fuzzing::mutate_envelope` for the invariants it checks.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::mutate_envelope(data));
