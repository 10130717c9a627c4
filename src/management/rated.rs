//! Counts with their rates, as RabbitMQ's management API writes them: `"ack": 12` beside
//! `"ack_details": {"rate": 0.4}`. Pure formatting for the handlers that show statistics.

use serde_json::{json, Map, Value};

use crate::broker::queue::stats::MessageCounters;

/// Add each (name, count, rate) to `out` under RabbitMQ's two keys.
pub(super) fn insert_rated<'a>(
    out: &mut Map<String, Value>,
    figures: impl IntoIterator<Item = (&'a str, u64, f64)>,
) {
    for (name, count, rate) in figures {
        out.insert(name.to_owned(), json!(count));
        out.insert(format!("{name}_details"), json!({ "rate": rate }));
    }
}

/// A queue's (or channel's, or the broker's) message counters with their rates, in the
/// order `MessageCounters::named` gives.
pub(super) fn counters_rated(
    counters: &MessageCounters,
    rates: [f64; 9],
) -> impl Iterator<Item = (&'static str, u64, f64)> {
    counters
        .named()
        .into_iter()
        .zip(rates)
        .map(|((name, count), rate)| (name, count, rate))
}
