//! Fuzz target `poly1305_differential`: the library's scalar Poly1305 against the
//! `poly1305` crate; see `fuzzing::poly1305_differential`.
#![no_main]

#[path = "../../tests/common/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::poly1305_differential(data));
