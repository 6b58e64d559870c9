//! Fuzz target `envelope_decode`: see `fuzzing::envelope_decode` for the invariants it checks.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::envelope_decode(data));
