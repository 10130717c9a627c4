//! The links between a queue actor and the channels that consume from it.
//!
//! A queue never awaits a connection (design rule 1): it hands a delivery over with an
//! unbounded send (`inbox`) only when the consumer has credit. `Credit` is that permission: prefetch
//! for acknowledging consumers (per consumer and per channel, RabbitMQ's `global` flag), and
//! an in-flight window for no-ack consumers that the connection's writer gives back once the
//! bytes are on the socket, so a client that stops reading cannot make the broker buffer
//! without bound. Whoever releases credit that had run out kicks the queue to resume.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::inbox;
use super::queue::{QueueCmd, QueueHandle};
use crate::model::message::QueuedMessage;

/// Deliveries in flight to the socket allowed per no-ack consumer before the queue waits.
pub const NO_ACK_WINDOW: u32 = 1000;

#[derive(Debug)]
pub struct Credit {
    used: AtomicU32,
    /// 0 means unlimited.
    limit: AtomicU32,
    /// The queue to wake when this credit frees up after running out.
    kick: Option<mpsc::Sender<QueueCmd>>,
}

impl Credit {
    pub fn new(limit: u32, kick: Option<mpsc::Sender<QueueCmd>>) -> Self {
        Self {
            used: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            kick,
        }
    }

    pub fn has_room(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        limit == 0 || self.used.load(Ordering::Acquire) < limit
    }

    pub fn take(&self) {
        self.used.fetch_add(1, Ordering::AcqRel);
    }

    /// Give back `n`; true when the credit had run out before (someone must be woken).
    pub fn release(&self, n: u32) -> bool {
        if n == 0 {
            return false;
        }
        let prev = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or(0);
        let limit = self.limit.load(Ordering::Acquire);
        let was_full = limit != 0 && prev >= limit;
        if was_full {
            if let Some(kick) = &self.kick {
                let _ = kick.try_send(QueueCmd::Kick);
            }
        }
        was_full
    }

    /// The limit in force (0 = none).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }
}

/// What a connection receives from queues.
#[derive(Debug)]
pub enum ConnEvent {
    Deliver {
        channel_id: u16,
        epoch: u64,
        consumer_tag: Arc<str>,
        queue: Arc<QueueHandle>,
        message: QueuedMessage,
        no_ack: bool,
    },
    /// A publish is durable (or failed): its confirm may be sent.
    Confirmed {
        channel_id: u16,
        epoch: u64,
        seq: u64,
        ack: bool,
    },
    /// The queue went away under the consumer (consumer_cancel_notify).
    ConsumerCancelled {
        channel_id: u16,
        epoch: u64,
        consumer_tag: Arc<str>,
    },
    /// A reply for the channel's direct reply-to consumer (`broker::direct_reply`).
    Reply {
        channel_id: u16,
        epoch: u64,
        message: Arc<crate::model::message::Message>,
    },
}

/// A connection's event channel as the store sees it: confirms arrive as `Confirmed` events.
#[derive(Debug)]
pub struct EventSink(pub inbox::Sender<ConnEvent>);

impl crate::store::ConfirmSink for EventSink {
    fn confirmed(&self, channel_id: u16, epoch: u64, seq: u64, ack: bool) {
        let _ = self.0.send(ConnEvent::Confirmed {
            channel_id,
            epoch,
            seq,
            ack,
        });
    }
}

/// One open channel as queues see it.
#[derive(Debug)]
pub struct ChannelLink {
    pub channel_id: u16,
    /// Unique per channel.open, so a delivery for a closed-and-reopened id is recognised.
    pub epoch: u64,
    pub connection_id: u64,
    /// Set when the channel first consumes: until then nothing needs to reach it.
    pub events: std::sync::OnceLock<inbox::Sender<ConnEvent>>,
    /// basic.qos(global=true) prefetch, shared by all the channel's consumers.
    pub prefetch: Credit,
    /// False once the channel is torn down: queues stop delivering to it at once.
    pub delivering: AtomicBool,
}

impl ChannelLink {
    /// Hand an event to the channel's connection; gives it back when the connection is gone.
    pub fn send(&self, event: ConnEvent) -> Result<(), ConnEvent> {
        match self.events.get() {
            Some(tx) => tx.send(event),
            None => Err(event),
        }
    }
}

/// One consumer as its queue sees it.
#[derive(Debug, Clone)]
pub struct ConsumerLink {
    pub tag: Arc<str>,
    pub channel: Arc<ChannelLink>,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority` (default 0): higher-priority consumers are served first.
    pub priority: i64,
    /// Per-consumer prefetch, or the in-flight window for no-ack consumers.
    pub credit: Arc<Credit>,
}

impl ConsumerLink {
    /// Take one unit of every credit this consumer needs, or none.
    pub fn try_take(&self) -> bool {
        if !self.channel.delivering.load(Ordering::Acquire) || !self.credit.has_room() {
            return false;
        }
        if !self.no_ack && !self.channel.prefetch.has_room() {
            return false;
        }
        self.credit.take();
        if !self.no_ack {
            self.channel.prefetch.take();
        }
        true
    }

    /// Undo `try_take` for a delivery that never reached the client.
    pub fn give_back(&self) {
        self.credit.release(1);
        if !self.no_ack {
            self.channel.prefetch.release(1);
        }
    }

    pub fn is_on(&self, epoch: u64) -> bool {
        self.channel.epoch == epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_runs_out_at_its_limit_and_reports_when_it_frees() {
        let c = Credit::new(2, None);
        assert!(c.has_room());
        c.take();
        c.take();
        assert!(!c.has_room());
        assert!(c.release(1));
        assert!(c.has_room());
        assert!(!c.release(1));
    }

    #[test]
    fn zero_limit_is_unlimited() {
        let c = Credit::new(0, None);
        for _ in 0..10_000 {
            c.take();
        }
        assert!(c.has_room());
    }
}
