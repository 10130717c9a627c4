//! Fuzz target: `warren::protocol::fuzzing::field_table` (see scripts/fuzz.sh).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warren::protocol::fuzzing::field_table(data));
