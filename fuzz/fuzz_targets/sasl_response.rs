//! Fuzz target: `warren::protocol::fuzzing::sasl_response` (see scripts/fuzz.sh).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warren::protocol::fuzzing::sasl_response(data));
