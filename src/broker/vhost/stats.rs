//! A vhost's message statistics, as RabbitMQ's `/api/vhosts` shows them. Publishes,
//! confirms and unroutable messages are counted here by the paths that count them
//! broker-wide (the channel's publish and confirm, the management API's publish, the delay
//! task); deliveries, gets and acks are the sum of the vhost's queues' own counters plus
//! those of queues already deleted, which a queue hands in as it goes. Rates are worked
//! out only when the API asks. Never touches a message.

use std::sync::Mutex;

use tokio::time::Instant;

use crate::broker::metrics::{publisher_stats_named, sampled, Counter};
use crate::broker::queue::stats::{MessageCounters, RateSampler, Sampler};

#[derive(Debug, Default)]
pub struct VHostStats {
    publish: Counter<4>,
    confirm: Counter<4>,
    return_unroutable: Counter<4>,
    drop_unroutable: Counter<4>,
    /// What deleted queues had counted.
    retired: Mutex<MessageCounters>,
    /// Bytes (received, sent) by connections that have closed.
    retired_octets: Mutex<[u64; 2]>,
    rates: Mutex<RateSampler>,
    publisher_rates: Mutex<Sampler<3>>,
    depth_rates: Mutex<Sampler<3>>,
    octet_rates: Mutex<Sampler<2>>,
}

impl VHostStats {
    /// A queue of this vhost is going; its counts stay in the vhost's.
    pub fn retire(&self, counters: &MessageCounters) {
        if let Ok(mut r) = self.retired.lock() {
            *r = r.plus(counters);
        }
    }

    /// The vhost's `message_stats`, from its live queues' counters: (name, count, rate).
    pub fn message_stats(&self, live: MessageCounters) -> Vec<(&'static str, u64, f64)> {
        let retired = self.retired.lock().map(|r| *r).unwrap_or_default();
        let mut counts = live.plus(&retired);
        // a vhost counts a message once, as published to an exchange, not per queue copy
        counts.publish = self.publish.get();
        let rates = self
            .rates
            .lock()
            .map(|mut s| s.rates(Instant::now(), counts))
            .unwrap_or([0.0; 9]);
        let mut out: Vec<_> = counts
            .named()
            .into_iter()
            .zip(rates)
            .map(|((name, n), rate)| (name, n, rate))
            .collect();
        let publisher = [
            self.confirm.get(),
            self.return_unroutable.get(),
            self.drop_unroutable.get(),
        ];
        out.extend(publisher_stats_named(
            publisher,
            sampled(&self.publisher_rates, publisher),
        ));
        out
    }

    /// Per-second change of (messages, ready, unacknowledged).
    pub fn depth_rates(&self, depth: [u64; 3]) -> [f64; 3] {
        sampled(&self.depth_rates, depth)
    }

    /// A connection to this vhost closed after carrying `octets` (received, sent).
    pub fn retire_octets(&self, octets: [u64; 2]) {
        if let Ok(mut r) = self.retired_octets.lock() {
            r[0] += octets[0];
            r[1] += octets[1];
        }
    }

    /// Bytes (received, sent) by the vhost's connections ever, given what the open ones
    /// carried so far, and their per-second rates.
    pub fn octets(&self, open: [u64; 2]) -> ([u64; 2], [f64; 2]) {
        let closed = self.retired_octets.lock().map(|r| *r).unwrap_or_default();
        let total = [open[0] + closed[0], open[1] + closed[1]];
        (total, sampled(&self.octet_rates, total))
    }
}

/// The publish-side events a vhost counts beside the broker-wide counters: each call
/// bumps both, so the vhost's figures and the overview's cannot drift apart.
impl super::VHost {
    pub fn count_published(&self) {
        self.metrics.messages_received.inc();
        self.stats.publish.inc();
    }

    pub fn count_confirmed(&self, n: u64) {
        self.metrics.messages_confirmed.add(n);
        self.stats.confirm.add(n);
    }

    /// An unroutable message: sent back to a mandatory publisher, or dropped.
    pub fn count_unroutable(&self, returned: bool) {
        if returned {
            self.metrics.messages_unroutable_returned.inc();
            self.stats.return_unroutable.inc();
        } else {
            self.metrics.messages_unroutable_dropped.inc();
            self.stats.drop_unroutable.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_queues_still_count_and_publishes_are_counted_once() {
        let s = VHostStats::default();
        s.publish.add(5);
        s.retire(&MessageCounters {
            publish: 3,
            ack: 2,
            ..Default::default()
        });
        let live = MessageCounters {
            publish: 2,
            ack: 1,
            get_empty: 4,
            ..Default::default()
        };
        let stats = s.message_stats(live);
        let count = |name: &str| stats.iter().find(|(n, ..)| *n == name).map(|(_, c, _)| *c);
        assert_eq!(count("publish"), Some(5));
        assert_eq!(count("ack"), Some(3));
        assert_eq!(count("get_empty"), Some(4));
        assert_eq!(count("confirm"), Some(0));
    }
}
