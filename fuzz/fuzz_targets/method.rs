//! Fuzz target: `warren::protocol::fuzzing::method` (see scripts/fuzz.sh).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warren::protocol::fuzzing::method(data));
