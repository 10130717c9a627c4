//! Fuzz target: `warren::protocol::fuzzing::frames` (see scripts/fuzz.sh).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warren::protocol::fuzzing::frames(data));
