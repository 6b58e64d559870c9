//! Fuzz target `at_rest`: asset headers and records from hostile bytes (spec/at-rest.md).
//! See `rpcseal-store/tests/common/at_rest_fuzz.rs` for the invariants it checks.
#![no_main]

#[path = "../../rpcseal-store/tests/common/at_rest_fuzz.rs"]
mod at_rest_fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| at_rest_fuzz::at_rest(data));
