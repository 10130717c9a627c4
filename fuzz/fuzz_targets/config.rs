//! Fuzz target: `warren::protocol::fuzzing::config` (see scripts/fuzz.sh).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warren::protocol::fuzzing::config(data));
