//! Broker-wide counters for Prometheus (RabbitMQ's `rabbitmq_global_*` and connection
//! churn). They are bumped on the publish and deliver paths, so each counter is sharded:
//! every thread adds to its own cache line and only a scrape sums them, and no two cores
//! fight over one counter. Counters only grow; they are never reset while the broker runs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::queue::stats::{MessageCounters, RateSampler, Sampler};

const SHARDS: usize = 16;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

/// A monotonic counter, cheap to bump from any thread. `N` slots: the broker-wide
/// counters take 16 (1 KB each); a counter kept per object (an exchange's) takes fewer, so
/// thousands of objects stay small while the few runtime threads still rarely share one.
#[derive(Debug)]
pub struct Counter<const N: usize = SHARDS> {
    slots: [Slot; N],
}

impl<const N: usize> Default for Counter<N> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl<const N: usize> Counter<N> {
    pub fn add(&self, n: u64) {
        self.slots[shard() % N].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// RabbitMQ's global counters, under the names its Prometheus plugin gives them (without
/// the `rabbitmq_global_` prefix and `_total` suffix).
#[derive(Debug, Default)]
pub struct GlobalMetrics {
    pub messages_received: Counter,
    pub messages_received_confirm: Counter,
    pub messages_routed: Counter,
    pub messages_unroutable_dropped: Counter,
    pub messages_unroutable_returned: Counter,
    pub messages_confirmed: Counter,
    pub messages_delivered_consume_auto_ack: Counter,
    pub messages_delivered_consume_manual_ack: Counter,
    pub messages_delivered_get_auto_ack: Counter,
    pub messages_delivered_get_manual_ack: Counter,
    pub messages_get_empty: Counter,
    pub messages_redelivered: Counter,
    pub messages_acknowledged: Counter,
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    pub channels_opened: Counter,
    pub channels_closed: Counter,
    /// Every successful non-passive queue.declare (a redeclare too), as RabbitMQ counts.
    pub queues_declared: Counter,
    pub queues_created: Counter,
    pub queues_deleted: Counter,
    /// Samples of `publisher_stats`' figures, for their rates in the overview.
    pub publisher_rates: std::sync::Mutex<Sampler<3>>,
    /// Samples of the churn counters, for the overview's and the node's churn rates.
    pub churn_rates: std::sync::Mutex<Sampler<7>>,
    /// Samples for the overview's message rates, taken when the overview is asked for.
    pub rates: std::sync::Mutex<RateSampler>,
    /// Samples of the total queue depth (messages, ready, unacknowledged) for its rates.
    pub depth_rates: std::sync::Mutex<Sampler<3>>,
}

impl GlobalMetrics {
    /// The message counters with RabbitMQ's names, for the exposition.
    pub fn messages(&self) -> [(&'static str, &'static str, u64); 13] {
        [
            ("messages_received", "Total number of messages received from publishers", self.messages_received.get()),
            ("messages_received_confirm", "Total number of messages received from publishers expecting confirmations", self.messages_received_confirm.get()),
            ("messages_routed", "Total number of messages routed to queues or streams", self.messages_routed.get()),
            ("messages_unroutable_dropped", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", self.messages_unroutable_dropped.get()),
            ("messages_unroutable_returned", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", self.messages_unroutable_returned.get()),
            ("messages_confirmed", "Total number of messages confirmed to publishers", self.messages_confirmed.get()),
            ("messages_delivered_consume_auto_ack", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", self.messages_delivered_consume_auto_ack.get()),
            ("messages_delivered_consume_manual_ack", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", self.messages_delivered_consume_manual_ack.get()),
            ("messages_delivered_get_auto_ack", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", self.messages_delivered_get_auto_ack.get()),
            ("messages_delivered_get_manual_ack", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", self.messages_delivered_get_manual_ack.get()),
            ("messages_get_empty", "Total number of times basic.get operations fetched no message", self.messages_get_empty.get()),
            ("messages_redelivered", "Total number of messages redelivered to consumers", self.messages_redelivered.get()),
            ("messages_acknowledged", "Total number of messages acknowledged by consumers", self.messages_acknowledged.get()),
        ]
    }

    /// The overview's `message_stats` beyond a queue's: confirms, and unroutable
    /// messages returned and dropped, each with its rate.
    pub fn publisher_stats(&self) -> [(&'static str, u64, f64); 3] {
        let now = [
            self.messages_confirmed.get(),
            self.messages_unroutable_returned.get(),
            self.messages_unroutable_dropped.get(),
        ];
        publisher_stats_named(now, sampled(&self.publisher_rates, now))
    }

    /// Objects coming and going: (Prometheus name without `rabbitmq_` and `_total`, the management
    /// API's name, help text, count).
    pub fn churn(&self) -> [(&'static str, &'static str, &'static str, u64); 7] {
        [
            (
                "connections_opened",
                "connection_created",
                "Total number of connections opened",
                self.connections_opened.get(),
            ),
            (
                "connections_closed",
                "connection_closed",
                "Total number of connections closed or terminated",
                self.connections_closed.get(),
            ),
            (
                "channels_opened",
                "channel_created",
                "Total number of channels opened",
                self.channels_opened.get(),
            ),
            (
                "channels_closed",
                "channel_closed",
                "Total number of channels closed",
                self.channels_closed.get(),
            ),
            (
                "queues_declared",
                "queue_declared",
                "Total number of queues declared",
                self.queues_declared.get(),
            ),
            (
                "queues_created",
                "queue_created",
                "Total number of queues created",
                self.queues_created.get(),
            ),
            (
                "queues_deleted",
                "queue_deleted",
                "Total number of queues deleted",
                self.queues_deleted.get(),
            ),
        ]
    }

    /// `churn` with each counter's per-second rate, for the overview and the node.
    pub fn churn_rated(&self) -> [(&'static str, &'static str, &'static str, u64, f64); 7] {
        let churn = self.churn();
        let rates = sampled(&self.churn_rates, churn.map(|(.., n)| n));
        std::array::from_fn(|i| {
            let (prometheus, api, help, n) = churn[i];
            (prometheus, api, help, n, rates[i])
        })
    }

    /// The broker's message counts under a queue's `message_stats` names, for the
    /// overview (`publish` is every message received from publishers).
    pub fn message_stats(&self) -> MessageCounters {
        MessageCounters {
            publish: self.messages_received.get(),
            deliver: self.messages_delivered_consume_manual_ack.get(),
            deliver_no_ack: self.messages_delivered_consume_auto_ack.get(),
            get: self.messages_delivered_get_manual_ack.get(),
            get_no_ack: self.messages_delivered_get_auto_ack.get(),
            redeliver: self.messages_redelivered.get(),
            ack: self.messages_acknowledged.get(),
            get_empty: self.messages_get_empty.get(),
        }
    }

    /// RabbitMQ's `messages_delivered`: every way a message reaches a consumer.
    pub fn messages_delivered(&self) -> u64 {
        self.messages_delivered_consume_auto_ack.get()
            + self.messages_delivered_consume_manual_ack.get()
            + self.messages_delivered_get_auto_ack.get()
            + self.messages_delivered_get_manual_ack.get()
    }
}

/// Confirms, unroutable returned and unroutable dropped, with their rates, under
/// RabbitMQ's `message_stats` names (the overview's, a vhost's and a channel's).
pub fn publisher_stats_named(now: [u64; 3], rates: [f64; 3]) -> [(&'static str, u64, f64); 3] {
    let names = ["confirm", "return_unroutable", "drop_unroutable"];
    std::array::from_fn(|i| (names[i], now[i], rates[i]))
}

/// The rates of `now` from a shared sampler (0 if its lock was poisoned).
pub fn sampled<const N: usize>(sampler: &std::sync::Mutex<Sampler<N>>, now: [u64; N]) -> [f64; N] {
    sampler
        .lock()
        .map(|mut s| s.rates(tokio::time::Instant::now(), now))
        .unwrap_or([0.0; N])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_from_many_threads_all_count() {
        let c = std::sync::Arc::new(Counter::<16>::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), 8000);
    }
}
