//! `ChannelState`: everything one AMQP channel remembers between frames: the publish being
//! assembled from method + header + body frames, its publisher `Confirms`, the transaction
//! buffer, delivered-but-unacked messages by delivery tag, and its consumers. Owned by the
//! connection task; queues reach the channel only through its `ChannelLink`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::broker::connections::ChannelSnapshot;
use crate::broker::consumer::{ChannelLink, ConsumerLink, Credit};
use crate::broker::queue::stats::{MessageCounters, RateSampler, Sampler};
use crate::broker::queue::QueueHandle;
use crate::connection::confirms::Confirms;
use crate::model::message::Message;
use crate::protocol::content::ContentHeader;
use crate::protocol::AmqpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    Closing,
}

/// A basic.publish waiting for its header and body frames.
#[derive(Debug)]
pub struct PendingPublish {
    pub exchange: Arc<str>,
    pub routing_key: Arc<str>,
    pub mandatory: bool,
    pub header: Option<ContentHeader>,
    pub body: BodyParts,
}

/// Body frames so far; a single frame stays the `Bytes` it arrived in.
#[derive(Debug, Default)]
pub enum BodyParts {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl BodyParts {
    pub fn len(&self) -> usize {
        match self {
            BodyParts::Empty => 0,
            BodyParts::One(b) => b.len(),
            BodyParts::Many(b) => b.len(),
        }
    }

    pub fn push(&mut self, part: Bytes) {
        *self = match std::mem::take(self) {
            BodyParts::Empty => BodyParts::One(part),
            BodyParts::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + part.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
            BodyParts::Many(mut all) => {
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
        }
    }

    pub fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(b) => b,
            BodyParts::Many(b) => b.freeze(),
        }
    }
}

/// A delivered message awaiting ack, by delivery tag.
#[derive(Debug, Clone)]
pub struct Unacked {
    pub queue: Arc<QueueHandle>,
    pub message_id: u64,
    /// The consumer's prefetch credit (None for basic.get).
    pub consumer_credit: Option<Arc<Credit>>,
    /// When it went out (on the broker's clock), for `consumer_timeout`.
    pub delivered_at: tokio::time::Instant,
}

#[derive(Debug)]
pub struct ConsumerEntry {
    pub queue: Arc<QueueHandle>,
    pub link: ConsumerLink,
}

/// What an ack/nack/reject does to the messages it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    Discard,
}

/// Work held back by tx.select until tx.commit.
#[derive(Debug, Default)]
pub struct TxBuffer {
    pub publishes: Vec<(Arc<Message>, bool)>,
    pub settles: Vec<(u64, bool, Settle)>,
}

#[derive(Debug)]
pub struct ChannelState {
    pub phase: Phase,
    pub link: Arc<ChannelLink>,
    pub pending: Option<PendingPublish>,
    /// Publisher confirms, once confirm.select was seen; boxed, as most channels never
    /// select them.
    pub confirms: Option<Box<Confirms>>,
    pub tx: Option<TxBuffer>,
    pub unacked: BTreeMap<u64, Unacked>,
    pub next_delivery_tag: u64,
    pub consumers: HashMap<Arc<str>, ConsumerEntry>,
    /// The direct reply-to consumer: its tag and registered name (dropped, it is gone).
    pub reply_consumer: Option<(Arc<str>, crate::broker::direct_reply::Registration)>,
    /// basic.qos(global=false) prefetch for consumers started after it.
    pub consumer_prefetch: u16,
    /// The last queue declared on this channel, for RabbitMQ's empty-name shorthand.
    pub last_queue: Option<String>,
    /// Counts for the management API's channel statistics, kept by this channel's task
    /// alone; rates are worked out when the API asks.
    pub stats: MessageCounters,
    pub confirmed: u64,
    /// Unroutable publishes sent back (mandatory) and dropped.
    pub returned: u64,
    pub dropped: u64,
    rates: RateSampler,
    publisher_rates: Sampler<3>,
    /// The last exchange and routing key published to: publishers mostly repeat them, and
    /// sharing one allocation saves two per message.
    last_exchange: Arc<str>,
    last_routing_key: Arc<str>,
}

impl ChannelState {
    pub fn new(link: Arc<ChannelLink>) -> Self {
        Self {
            phase: Phase::Open,
            link,
            pending: None,
            confirms: None,
            tx: None,
            unacked: BTreeMap::new(),
            reply_consumer: None,
            next_delivery_tag: 1,
            consumers: HashMap::new(),
            consumer_prefetch: 0,
            last_queue: None,
            stats: MessageCounters::default(),
            confirmed: 0,
            returned: 0,
            dropped: 0,
            rates: RateSampler::default(),
            publisher_rates: Sampler::default(),
            last_exchange: "".into(),
            last_routing_key: "".into(),
        }
    }

    /// `exchange` and `routing_key` as shared strings, reusing the previous publish's.
    pub fn intern(&mut self, exchange: &str, routing_key: &str) -> (Arc<str>, Arc<str>) {
        if *self.last_exchange != *exchange {
            self.last_exchange = exchange.into();
        }
        if *self.last_routing_key != *routing_key {
            self.last_routing_key = routing_key.into();
        }
        (self.last_exchange.clone(), self.last_routing_key.clone())
    }

    /// A newly opened channel. `epoch` tells this opening apart from earlier ones of the
    /// same number, so a queue's late delivery for a closed channel is not taken for it.
    pub fn open(channel_id: u16, epoch: u64, connection_id: u64) -> Self {
        Self::new(Arc::new(ChannelLink {
            channel_id,
            epoch,
            connection_id,
            events: std::sync::OnceLock::new(),
            prefetch: Credit::new(0, None),
            delivering: std::sync::atomic::AtomicBool::new(true),
        }))
    }

    /// The channel number this state belongs to.
    pub fn id(&self) -> u16 {
        self.link.channel_id
    }

    /// RabbitMQ's shorthand: an empty queue name means the last queue declared here.
    pub fn queue_name(&self, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// What `/api/channels` shows of this channel.
    pub fn snapshot(&mut self, number: u16) -> ChannelSnapshot {
        ChannelSnapshot {
            number,
            confirm: self.confirms.is_some(),
            transactional: self.tx.is_some(),
            consumer_count: self.consumers.len(),
            messages_unacknowledged: self.unacked.len(),
            messages_unconfirmed: self.confirms.as_ref().map_or(0, |c| c.unconfirmed()),
            messages_uncommitted: self.tx.as_ref().map_or(0, |t| t.publishes.len()),
            acks_uncommitted: self.tx.as_ref().map_or(0, |t| t.settles.len()),
            prefetch_count: self.consumer_prefetch as u32,
            global_prefetch_count: self.link.prefetch.limit(),
            counters: self.stats,
            rates: self.rates.rates(tokio::time::Instant::now(), self.stats),
            publisher: {
                let now = [self.confirmed, self.returned, self.dropped];
                let rates = self.publisher_rates.rates(tokio::time::Instant::now(), now);
                crate::broker::metrics::publisher_stats_named(now, rates)
            },
        }
    }

    pub fn take_delivery_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    /// The distinct queues this channel consumes from.
    pub fn consumed_queues(&self) -> Vec<Arc<QueueHandle>> {
        let mut out: Vec<Arc<QueueHandle>> = Vec::new();
        for c in self.consumers.values() {
            if !out.iter().any(|q| Arc::ptr_eq(q, &c.queue)) {
                out.push(c.queue.clone());
            }
        }
        out
    }
}

/// Group message ids by the queue that holds them.
pub fn group_by_queue(
    entries: impl IntoIterator<Item = Unacked>,
) -> Vec<(Arc<QueueHandle>, Vec<u64>)> {
    let mut groups: Vec<(Arc<QueueHandle>, Vec<u64>)> = Vec::new();
    for e in entries {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &e.queue)) {
            Some((_, ids)) => ids.push(e.message_id),
            None => groups.push((e.queue, vec![e.message_id])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_body_frame_stays_zero_copy_and_several_concatenate() {
        let mut b = BodyParts::default();
        let part = Bytes::from_static(b"abc");
        b.push(part.clone());
        assert!(matches!(&b, BodyParts::One(x) if x.as_ptr() == part.as_ptr()));
        b.push(Bytes::from_static(b"de"));
        assert_eq!(b.len(), 5);
        assert_eq!(&b.into_bytes()[..], b"abcde");
    }
}
