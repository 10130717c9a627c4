//! Entry points for the fuzzers in `fuzz/` and for `tests/fuzz_corpus.rs`, which replays
//! the kept corpus and every crash ever found without a fuzzer. Each takes arbitrary bytes
//! and must return without panicking, overflowing the stack or allocating without bound;
//! errors are the expected outcome for most inputs. Not part of the broker's API.

use bytes::BytesMut;

use super::{content, frame, method, sasl, table};

/// The frame splitter on a byte stream, and each frame's payload through the decoder its
/// type selects (method, content header), as a connection would.
pub fn frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = frame::split(&mut buf, 131_072) {
        match f.kind {
            frame::FRAME_METHOD => {
                let _ = method::parse_publish(&f.payload);
                let _ = method::decode(&f.payload);
            }
            frame::FRAME_HEADER => {
                let _ = content::parse_header(f.payload);
            }
            _ => {}
        }
    }
}

/// A method frame's payload.
pub fn method(data: &[u8]) {
    let _ = method::ids(data);
    let _ = method::parse_publish(data);
    let _ = method::qos_prefetch_size(data);
    let _ = method::decode(data);
}

/// A content header's property list, and its headers table when there is one.
pub fn properties(data: &[u8]) {
    if let Ok(peek) = content::peek_properties(data) {
        if let Some(range) = peek.headers {
            let _ = content::decode_headers(data, range);
        }
    }
}

/// A field table: the depth/length check, then the decoder only when the check passed
/// (as the broker does).
pub fn field_table(data: &[u8]) {
    if table::check(data).is_ok() {
        let _ = amq_protocol::types::parsing::parse_field_table(data);
    }
}

/// A SASL response; the first byte picks the mechanism.
pub fn sasl_response(data: &[u8]) {
    let Some((pick, response)) = data.split_first() else {
        return;
    };
    let mechanism = ["PLAIN", "AMQPLAIN", "EXTERNAL", "plain"][*pick as usize % 4];
    let _ = sasl::parse_response(mechanism, response);
}

/// The configuration file parser.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::default().apply_toml(text, "fuzz.toml");
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("frames", frames),
    ("method", method),
    ("properties", properties),
    ("field_table", field_table),
    ("sasl_response", sasl_response),
    ("config", config),
];
