//! A queue's statistics for the management API and metrics: message counters kept by its
//! actor (plain integers, owned by the one task, so counting costs the publish path no lock
//! and no atomic) and rates worked out only when someone asks. Never sends anything.

use std::time::Duration;

use tokio::time::Instant;

/// Message counts since the queue started, under RabbitMQ's `message_stats` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounters {
    pub publish: u64,
    /// Delivered to consumers that acknowledge.
    pub deliver: u64,
    pub deliver_no_ack: u64,
    /// Taken with basic.get that will be acknowledged.
    pub get: u64,
    pub get_no_ack: u64,
    /// Delivered (or got) again after a requeue.
    pub redeliver: u64,
    pub ack: u64,
    /// basic.gets that found the queue empty.
    pub get_empty: u64,
}

impl MessageCounters {
    /// Each counter with its name, in RabbitMQ's order; `deliver_get` is RabbitMQ's sum of
    /// the four ways a message leaves.
    pub fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("publish", self.publish),
            ("deliver", self.deliver),
            ("deliver_no_ack", self.deliver_no_ack),
            ("get", self.get),
            ("get_no_ack", self.get_no_ack),
            (
                "deliver_get",
                self.deliver + self.deliver_no_ack + self.get + self.get_no_ack,
            ),
            ("redeliver", self.redeliver),
            ("ack", self.ack),
            ("get_empty", self.get_empty),
        ]
    }

    /// Both counts together (a vhost's live queues and those already deleted).
    pub fn plus(&self, o: &MessageCounters) -> MessageCounters {
        MessageCounters {
            publish: self.publish + o.publish,
            deliver: self.deliver + o.deliver,
            deliver_no_ack: self.deliver_no_ack + o.deliver_no_ack,
            get: self.get + o.get,
            get_no_ack: self.get_no_ack + o.get_no_ack,
            redeliver: self.redeliver + o.redeliver,
            ack: self.ack + o.ack,
            get_empty: self.get_empty + o.get_empty,
        }
    }
}

/// Rates are measured over at least this long, RabbitMQ's default statistics interval.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Two samples of some figures, taken when asked: a rate is the change since the older
/// one (negative when a figure fell, as a queue's depth does). Nothing runs between
/// requests.
///
/// The samples live behind a box made on the first request: every channel, queue and
/// connection carries samplers, most are never asked, and 10,000 idle connections would
/// otherwise hold a quarter of a kilobyte each of empty samples.
#[derive(Debug)]
pub struct Sampler<const N: usize>(Option<Box<Samples<N>>>);

#[derive(Debug)]
struct Samples<const N: usize> {
    older: Option<(Instant, [u64; N])>,
    newer: (Instant, [u64; N]),
}

impl<const N: usize> Default for Sampler<N> {
    fn default() -> Self {
        Self(None)
    }
}

impl<const N: usize> Sampler<N> {
    /// Per-second change of each figure, 0 until two requests lie far enough apart.
    pub fn rates(&mut self, now: Instant, current: [u64; N]) -> [f64; N] {
        let Some(samples) = self.0.as_mut() else {
            self.0 = Some(Box::new(Samples {
                older: None,
                newer: (now, current),
            }));
            return [0.0; N];
        };
        if now.duration_since(samples.newer.0) >= RATE_WINDOW {
            samples.older = Some(std::mem::replace(&mut samples.newer, (now, current)));
        }
        let Some((since, before)) = samples.older else {
            return [0.0; N];
        };
        let seconds = now.duration_since(since).as_secs_f64();
        if seconds <= 0.0 {
            return [0.0; N];
        }
        let mut out = [0.0; N];
        for (i, (a, b)) in current.iter().zip(before).enumerate() {
            out[i] = (*a as f64 - b as f64) / seconds;
        }
        out
    }
}

/// Rates of `MessageCounters`, in the order of `named`.
#[derive(Debug, Default)]
pub struct RateSampler(Sampler<9>);

impl RateSampler {
    pub fn rates(&mut self, now: Instant, current: MessageCounters) -> [f64; 9] {
        self.0.rates(now, current.named().map(|(_, n)| n))
    }
}

/// One consumer as the management API lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerDetail {
    pub tag: String,
    pub connection_id: u64,
    pub channel_id: u16,
    pub ack_required: bool,
    pub exclusive: bool,
    pub prefetch_count: u32,
    pub priority: i64,
    /// Receiving messages (false: waiting behind a single active consumer).
    pub active: bool,
}

/// What a queue reports about itself when asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueInfo {
    pub messages_ready: u32,
    pub messages_unacknowledged: u32,
    pub message_bytes_ready: u64,
    pub message_bytes_unacknowledged: u64,
    pub consumers: u32,
    pub counters: MessageCounters,
    pub rates: [f64; 9],
    /// Per-second change of messages, messages_ready and messages_unacknowledged.
    pub depth_rates: [f64; 3],
    pub consumer_details: Vec<ConsumerDetail>,
    /// The policy and operator policy the queue runs under.
    pub policy: crate::broker::policy::Applied,
    /// Messages the queue keeps in its store (persistent ones in a durable queue, every
    /// one in a quorum queue), ready and unacknowledged.
    pub messages_persistent: u32,
    /// Ready messages held by store id only, loaded again as they near the head.
    pub messages_paged_out: u32,
    /// The share of recent time consumers could take a message at once (0 without any).
    pub consumer_utilisation: f64,
    /// The `timestamp` property of the message at the head, when it is in memory (as in
    /// RabbitMQ, which only sees paged-in heads).
    pub head_message_timestamp: Option<u64>,
    pub exclusive_consumer_tag: Option<String>,
    pub single_active_consumer_tag: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_the_change_over_the_window_between_requests() {
        let start = Instant::now();
        let mut sampler = RateSampler::default();
        let mut c = MessageCounters::default();
        assert_eq!(sampler.rates(start, c), [0.0; 9]);
        c.publish = 50;
        // too soon after the first sample to say anything
        assert_eq!(sampler.rates(start + Duration::from_secs(1), c)[0], 0.0);
        c.publish = 100;
        c.ack = 20;
        let r = sampler.rates(start + Duration::from_secs(10), c);
        assert_eq!(r[0], 10.0);
        assert_eq!(r[7], 2.0);
        // asked again soon: still measured from the same older sample
        c.publish = 130;
        let r = sampler.rates(start + Duration::from_secs(11), c);
        assert!((r[0] - 130.0 / 11.0).abs() < 1e-9);
        assert_eq!(r[5], 0.0);
    }

    #[test]
    fn a_falling_figure_has_a_negative_rate() {
        let start = Instant::now();
        let mut depth = Sampler::<1>::default();
        depth.rates(start, [100]);
        let r = depth.rates(start + Duration::from_secs(10), [40]);
        assert_eq!(r, [-6.0]);
    }
}
