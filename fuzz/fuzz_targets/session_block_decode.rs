//! Fuzz target `session_block_decode`: see `fuzzing::session_block_decode` for the invariants it checks.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::session_block_decode(data));
