//! Queues. A queue is owned by one task, its `QueueActor`; everyone else holds a
//! `QueueHandle` (name, declared properties, mailbox) and talks to it with `QueueCmd`s.
//! Publishers await a slot in the bounded mailbox, which is how a full queue slows its
//! publishers down (TCP backpressure, design rule 3).
//!
//! The actor's rooms: `consumers` (who gets the next message), `journal` (what the store
//! must remember), `limits` (max-length and overflow), `ready` (the waiting messages);
//! a message that leaves without an ack goes through the actor's one `discard`, which
//! hands it to the vhost's dead-letter task when the queue has a dead-letter exchange.

pub mod actor;
pub mod args;
pub mod consumers;
pub mod journal;
pub mod limits;
mod policy;
pub mod ready;
pub mod stats;
pub mod utilisation;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use amq_protocol::types::FieldTable;
use tokio::sync::{mpsc, oneshot};

use super::consumer::ConsumerLink;
use super::policy::Applied;
use super::vhost::VHost;
use crate::model::message::{Message, QueuedMessage};
use crate::protocol::AmqpError;
use crate::store::{ConfirmToken, Store};
pub use ready::{Payload, ReadyEntry};

pub use args::QueueArgs;

/// Mailbox size: filled by publishers and channels, drained by the actor. When full, the
/// publishing connection stops reading its socket until there is room.
pub const MAILBOX: usize = 4096;

#[derive(Debug)]
pub struct QueueHandle {
    pub name: Arc<str>,
    pub durable: bool,
    pub auto_delete: bool,
    /// Connection id owning an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub arguments: FieldTable,
    /// What the arguments say; the actor runs with these and its policy together.
    pub args: QueueArgs,
    /// The queue's identity in the store; Some only for durable, non-exclusive queues,
    /// whose persistent messages are stored.
    pub store_key: Option<Arc<str>>,
    pub tx: mpsc::Sender<QueueCmd>,
    /// Whether the queue, with its policy, refuses publishes when full. Read on every
    /// publish, so a flag; the vhost sets it before the actor hears of a new policy, so
    /// a confirm rides along with every message the actor may refuse.
    rejects_publishes: AtomicBool,
    /// Whether it expires when unused (a redeclare then counts as a use).
    expires: AtomicBool,
}

impl QueueHandle {
    /// Whether this queue keeps a copy of `m` in the store (so its confirm waits for it).
    pub fn stores(&self, m: &Message) -> bool {
        self.store_key.is_some() && (m.persistent || self.args.is_quorum())
    }

    /// Whether a confirming publisher's token must ride along with `m`: the queue stores
    /// it, or may refuse it (`x-overflow: reject-publish`).
    pub fn takes_confirm(&self, m: &Message) -> bool {
        self.stores(m) || self.rejects_publishes.load(Ordering::Relaxed)
    }

    /// Whether it expires when unused, by argument or policy.
    pub fn expires(&self) -> bool {
        self.expires.load(Ordering::Relaxed)
    }

    /// The settings it runs with under `applied`.
    pub fn args_under(&self, applied: &Applied) -> QueueArgs {
        crate::broker::policy::queue_args(&self.arguments, &self.args, applied)
    }

    /// Publish-path flags from the settings it is about to run with (set by whoever sends
    /// the actor its policy, in version order).
    pub fn set_flags(&self, args: &QueueArgs) {
        self.rejects_publishes
            .store(args.rejects_publishes(), Ordering::Relaxed);
        self.expires
            .store(args.expires.is_some(), Ordering::Relaxed);
    }

    /// Hand `message` to each of `targets` in turn (waiting for room in each mailbox); the
    /// queues `holds` picks carry `confirm`, so it fires only once they have let go.
    pub async fn publish_to(
        targets: Vec<Arc<QueueHandle>>,
        message: &Arc<Message>,
        confirm: Option<&Arc<ConfirmToken>>,
        holds: impl Fn(&QueueHandle) -> bool,
    ) {
        for q in targets {
            let confirm = confirm.filter(|_| holds(&q)).cloned();
            q.send(QueueCmd::Publish {
                message: message.clone(),
                confirm,
            })
            .await;
        }
    }

    /// Commands sent to the actor that it has not taken yet.
    pub fn has_pending(&self) -> bool {
        self.tx.capacity() < self.tx.max_capacity()
    }

    /// A command for the actor; false when the queue has gone (deleted meanwhile).
    pub async fn send(&self, cmd: QueueCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// A request with a reply; `None` when the queue went away before answering.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> QueueCmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(make(tx)).await.is_err() {
            return None;
        }
        rx.await.ok()
    }
}

/// Message counts reported by queue.declare-ok.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

#[derive(Debug)]
pub enum QueueCmd {
    /// A routed message; `confirm` rides along to the store when this copy is stored.
    Publish {
        message: Arc<Message>,
        confirm: Option<Arc<ConfirmToken>>,
    },
    /// Boxed, as the rare large variants are: every queue's mailbox allocates its slots
    /// at the size of the largest variant, and an idle queue should cost little.
    Consume {
        consumer: Box<ConsumerLink>,
        reply: oneshot::Sender<Result<(), AmqpError>>,
    },
    /// Remove a consumer; the reply says it is gone (basic.cancel-ok may follow).
    Cancel(Box<CancelConsumer>),
    /// basic.get: the message and how many remain.
    Get {
        no_ack: bool,
        reply: oneshot::Sender<Option<(QueuedMessage, u32)>>,
    },
    /// basic.ack: delivered messages are done with. (Boxed slices rather than vectors:
    /// two words instead of three keep every mailbox slot at 24 bytes.)
    Ack(Box<[u64]>),
    /// basic.reject / basic.nack without requeue: discarded as `rejected` (dead-lettered
    /// when the queue has a dead-letter exchange).
    Reject(Box<[u64]>),
    /// Put delivered messages back in their original place, marked redelivered.
    Requeue(Box<[u64]>),
    /// Deliveries that never reached their consumer: back in place, flags unchanged.
    Reinsert(Box<[QueuedMessage]>),
    Purge {
        reply: oneshot::Sender<u32>,
    },
    Stats {
        reply: oneshot::Sender<QueueStats>,
    },
    /// Counts, bytes and message rates, for the management API.
    Info {
        reply: oneshot::Sender<stats::QueueInfo>,
    },
    Delete {
        if_unused: bool,
        if_empty: bool,
        reply: oneshot::Sender<Result<u32, AmqpError>>,
    },
    /// Credit became available somewhere: try delivering again.
    Kick,
    /// The queue was redeclared: its `x-expires` period starts again.
    Touch,
    /// Its policies changed, and the settings they give (worked out once, by the vhost,
    /// which set the publish-path flags from them); `version` orders changes sent from
    /// different tasks.
    Policy(Box<PolicyChange>),
}

#[derive(Debug)]
pub struct CancelConsumer {
    pub epoch: u64,
    pub tag: Arc<str>,
    pub reply: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
pub struct PolicyChange {
    pub version: u64,
    pub applied: Applied,
    pub args: QueueArgs,
}

/// What a queue is declared (or recovered) with.
#[derive(Debug)]
pub struct QueueInit {
    pub name: Arc<str>,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive_owner: Option<u64>,
    pub arguments: FieldTable,
    pub args: QueueArgs,
    /// The store, for durable non-exclusive queues.
    pub store: Option<(Store, Arc<str>)>,
    /// Positions recovered from the store, in queue order: (seq, store id, delivered).
    pub recovered: Vec<(u64, u64, bool)>,
    /// Recovered delivery counts of a quorum queue's returned messages, by seq.
    pub recovered_counts: std::collections::HashMap<u64, u32>,
    /// Bytes of ready message bodies kept in memory before stored ones are paged out.
    pub ram_limit: usize,
    /// The broker's counters: deliveries and acks are counted there too.
    pub metrics: Arc<crate::broker::metrics::GlobalMetrics>,
    /// The policies in force when it starts, and their version.
    pub policy: Applied,
    pub policy_version: u64,
    /// The broker's clock, for TTLs and expiry.
    pub clock: crate::broker::clock::Clock,
}

/// Start a queue's actor and return its handle.
pub fn spawn(init: QueueInit, vhost: Weak<VHost>) -> Arc<QueueHandle> {
    let (tx, rx) = mpsc::channel(MAILBOX);
    let handle = Arc::new(QueueHandle {
        name: init.name.clone(),
        durable: init.durable,
        auto_delete: init.auto_delete,
        exclusive_owner: init.exclusive_owner,
        arguments: init.arguments.clone(),
        args: init.args.clone(),
        store_key: init.store.as_ref().map(|(_, k)| k.clone()),
        tx,
        rejects_publishes: AtomicBool::new(false),
        expires: AtomicBool::new(false),
    });
    let actor = actor::QueueActor::new(Arc::downgrade(&handle), &handle, vhost, init);
    handle.set_flags(&actor.args);
    // boxed: `run` holds the actor across its awaits, and a boxed actor is kept once
    // instead of copied into the task's state (2.2 KB per idle queue, 0.4 KB boxed)
    tokio::spawn(Box::new(actor).run(rx));
    handle
}

#[cfg(test)]
mod mailbox_tests {
    #[test]
    fn a_queue_command_stays_small_so_an_idle_mailbox_costs_little() {
        // tokio allocates a queue's first block of 32 mailbox slots up front
        assert!(std::mem::size_of::<super::QueueCmd>() <= 24);
    }
}
