//! `QueueActor`: the single owner of one queue's ready messages, delivered-but-unacked
//! messages and consumers. It receives `QueueCmd`s from channels, publishers and the
//! dead-letter task, hands messages to consumers that have credit and never awaits a
//! connection or another queue. It owns the queue's time-based work (message expiry and
//! `x-expires`) in one timer, and submits its store changes as one batch per wake-up
//! (awaited: a slow disk slows this queue's publishers, never its consumers' acks).
//!
//! A message leaves in one of two ways: acknowledged (`Ack`, or a no-ack delivery), or
//! through `discard` with RabbitMQ's reason (rejected, expired, maxlen, delivery_limit),
//! which dead-letters it when the queue has a dead-letter exchange.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::args::{Overflow, QueueArgs};
use super::consumers::ConsumerSet;
use super::journal::Journal;
use super::limits::Limits;
use super::ready::{Payload, ReadyEntry, ReadyList};
use super::stats::{ConsumerDetail, MessageCounters, QueueInfo, RateSampler, Sampler};
use super::utilisation::Utilisation;
use super::{CancelConsumer, PolicyChange, QueueCmd, QueueHandle, QueueInit, QueueStats};
use crate::broker::clock::Clock;
use crate::broker::consumer::{ConnEvent, ConsumerLink};
use crate::broker::deadletter::{DeadLetter, Reason};
use crate::broker::metrics::GlobalMetrics;
use crate::broker::policy::Applied;
use crate::broker::vhost::VHost;
use crate::model::message::{Message, QueuedMessage};
use crate::protocol::content::{headers_of, peek_properties, rewrite_properties};
use crate::protocol::AmqpError;
use crate::store::ConfirmToken;

/// How many entries at the head of each priority level are kept loaded.
const PAGE_IN_WINDOW: usize = 512;

pub struct QueueActor {
    pub(super) handle: Weak<QueueHandle>,
    name: Arc<str>,
    auto_delete: bool,
    /// Its arguments and policies together (`policy::queue_args`).
    pub(super) args: QueueArgs,
    pub(super) limits: Limits,
    /// The policies it runs under, and the version of the vhost's policies they are from.
    pub(super) policy: Applied,
    pub(super) policy_version: u64,
    vhost: Weak<VHost>,
    ready: ReadyList,
    unacked: HashMap<u64, QueuedMessage>,
    consumers: ConsumerSet,
    next_id: u64,
    journal: Journal,
    /// Bytes of ready bodies kept in memory before stored messages are paged out.
    ram_limit: usize,
    /// Replies that may only go out once this wake-up's store changes are submitted, so
    /// nothing the client does next can overtake them in the store's queue.
    deferred: Vec<Deferred>,
    /// Dead letters of this wake-up, handed on after its store changes are submitted, so
    /// a copy's removal from this queue's store can never overtake its enqueue.
    dead_letters: Vec<DeadLetter>,
    /// `x-expires`: when the queue is deleted unless it is used before.
    pub(super) unused_until: Option<Instant>,
    counters: MessageCounters,
    rates: RateSampler,
    depth_rates: Sampler<3>,
    metrics: Arc<GlobalMetrics>,
    /// What TTLs and expiry are measured on.
    clock: Clock,
    /// How much of the time consumers could take messages at once.
    utilisation: Utilisation,
}

enum Deferred {
    Cancelled(tokio::sync::oneshot::Sender<()>),
    Deleted(tokio::sync::oneshot::Sender<Result<u32, AmqpError>>, u32),
}

enum Next {
    Continue,
    /// The queue is gone.
    Stop,
}

impl QueueActor {
    pub fn new(
        weak: Weak<QueueHandle>,
        handle: &QueueHandle,
        vhost: Weak<VHost>,
        init: QueueInit,
    ) -> Self {
        let args = handle.args_under(&init.policy);
        let mut ready = ReadyList::new(args.max_priority);
        let journal = Journal::new(init.store, args.is_quorum());
        let next_id = init.recovered.last().map_or(1, |(seq, _, _)| seq + 1);
        let now = init.clock.now();
        let queue_ttl = args.message_ttl.map(|ms| now + Duration::from_millis(ms));
        if let Some((last, _, _)) = init.recovered.last() {
            // TTLs of recovered messages run again from the restart.
            ready.set_recovered(*last, now);
        }
        // Recovered messages start in the store only; the head is loaded on demand. A
        // priority queue needs each message's priority to place it, and a byte-limited
        // queue each body's size, so those load them all (the latter is small by design).
        if ready.is_priority() || args.max_length_bytes.is_some() {
            let ids: Vec<u64> = init.recovered.iter().map(|(_, id, _)| *id).collect();
            for ((seq, id, delivered), record) in init.recovered.iter().zip(journal.read(&ids)) {
                if let Some(r) = record {
                    let message = Arc::new(Message::from_record(*id, r));
                    let own = message.expiration.map(|ms| now + Duration::from_millis(ms));
                    ready.push(QueuedMessage {
                        id: *seq,
                        message,
                        redelivered: *delivered,
                        expires_at: earliest(own, queue_ttl),
                        delivery_count: 0,
                    });
                }
            }
        } else {
            for (seq, id, delivered) in init.recovered {
                ready.push_paged(seq, id, Weak::new(), delivered, queue_ttl);
            }
        }
        ready.set_delivery_counts(&init.recovered_counts);
        Self {
            handle: weak,
            name: handle.name.clone(),
            auto_delete: handle.auto_delete,
            limits: Limits::new(&args),
            policy: init.policy,
            policy_version: init.policy_version,
            consumers: ConsumerSet::new(args.single_active_consumer),
            unused_until: args.expires.map(|ms| now + Duration::from_millis(ms)),
            args,
            vhost,
            ready,
            unacked: HashMap::new(),
            next_id,
            journal,
            ram_limit: init.ram_limit,
            deferred: Vec::new(),
            dead_letters: Vec::new(),
            counters: MessageCounters::default(),
            rates: RateSampler::default(),
            depth_rates: Sampler::default(),
            metrics: init.metrics,
            utilisation: Utilisation::new(init.clock.now()),
            clock: init.clock,
        }
    }

    pub async fn run(mut self: Box<Self>, mut rx: mpsc::Receiver<QueueCmd>) {
        // a recovered head's expiry is only known once it is loaded
        self.load_head();
        let mut stopped = false;
        let mut advanced = self.clock.advanced();
        let clock = self.clock.clone();
        while !stopped {
            let wake = self.next_wake();
            let cmd = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => Some(cmd),
                    None => break,
                },
                _ = clock.sleep_until(wake, &mut advanced), if wake.is_some() || advanced.is_some() => None,
            };
            if let Some(cmd) = cmd {
                stopped = matches!(self.handle_cmd(cmd), Next::Stop);
                // Drain whatever else is already waiting before delivering, so a burst
                // of publishes is handed out (and stored) in one pass.
                for _ in 0..256 {
                    if stopped {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(cmd) => stopped = matches!(self.handle_cmd(cmd), Next::Stop),
                        Err(_) => break,
                    }
                }
            }
            if !stopped {
                let now = self.clock.now();
                self.expire(now);
                self.dispatch();
                self.ready.shrink_if_empty();
                if self.consumers.is_empty() && self.unused_until.is_some_and(|t| t <= now) {
                    // x-expires: deleted as by queue.delete (nothing is dead-lettered)
                    self.leave();
                    stopped = true;
                }
            }
            self.journal.submit().await;
            for d in self.deferred.drain(..) {
                match d {
                    Deferred::Cancelled(tx) => {
                        let _ = tx.send(());
                    }
                    Deferred::Deleted(tx, n) => {
                        let _ = tx.send(Ok(n));
                    }
                }
            }
            if !self.dead_letters.is_empty() {
                if let Some(vhost) = self.vhost.upgrade() {
                    for dl in self.dead_letters.drain(..) {
                        vhost.dead_letter(dl);
                    }
                    vhost.pace_dead_letters().await;
                }
            }
        }
        // Anything still in the mailbox after a delete is dropped with the queue.
        rx.close();
    }

    /// The one timer: the earliest head-of-queue expiry, and `x-expires` while unused.
    fn next_wake(&self) -> Option<Instant> {
        let unused = self.unused_until.filter(|_| self.consumers.is_empty());
        earliest(self.ready.next_expiry(), unused)
    }

    /// The queue was used: its `x-expires` period starts again.
    pub(super) fn touch(&mut self) {
        if let Some(ms) = self.args.expires {
            self.unused_until = Some(self.clock.now() + Duration::from_millis(ms));
        }
    }

    /// Leave the vhost (tables, bindings, durable definitions) and the store.
    fn leave(&mut self) {
        if let (Some(vhost), Some(handle)) = (self.vhost.upgrade(), self.handle.upgrade()) {
            self.journal.push_ops(vhost.remove_queue(&handle));
            vhost.stats.retire(&self.counters);
        }
        self.journal.delete_queue();
    }

    fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "/".into())
    }

    /// The one exit for a message that leaves without an ack. `seq` is its place in this
    /// queue when it was in it (None: refused at the door, never stored here).
    fn discard(&mut self, seq: Option<u64>, message: Arc<Message>, reason: Reason) {
        let removal = seq.and_then(|seq| {
            self.journal
                .removal(seq, message.persistent, message.store_id)
        });
        let Some(exchange) = self.args.dead_letter_exchange.clone() else {
            self.journal.push_ops(removal.into_iter().collect());
            return;
        };
        let release = removal.and_then(|op| self.journal.store().map(|s| (s.clone(), op)));
        self.dead_letters.push(DeadLetter {
            message,
            reason,
            queue: self.name.clone(),
            exchange,
            routing_key: self.args.dead_letter_routing_key.clone(),
            release,
        });
    }

    /// `discard` for a ready entry, loading it first if it is paged and must be
    /// dead-lettered.
    fn discard_entry(&mut self, e: ReadyEntry, reason: Reason) {
        let (id, store_id) = (e.id, e.store_id());
        let message = match e.payload {
            Payload::Loaded(m) => Some(m),
            Payload::Paged { .. } if self.args.dead_letter_exchange.is_none() => None,
            Payload::Paged { store_id, weak } => weak.upgrade().or_else(|| {
                let record = self.journal.read(&[store_id]).pop().flatten()?;
                Some(Arc::new(Message::from_record(store_id, record)))
            }),
        };
        match message {
            Some(m) => self.discard(Some(id), m, reason),
            None => self.journal.remove(id, true, store_id),
        }
    }

    fn forget_message(&mut self, m: &QueuedMessage) {
        self.journal
            .remove(m.id, m.message.persistent, m.message.store_id);
    }

    /// Bring paged entries near the head back into memory, in one store read.
    fn load_head(&mut self) {
        if self.ready.head_is_paged() {
            self.load_window(PAGE_IN_WINDOW);
        }
    }

    /// Load the first `window` paged entries of each priority level.
    pub(super) fn load_window(&mut self, window: usize) {
        let journal = &self.journal;
        self.ready.load_head(window, |keys| {
            let mut out: Vec<Option<Arc<Message>>> =
                keys.iter().map(|(_, weak)| weak.upgrade()).collect();
            let missing: Vec<u64> = keys
                .iter()
                .zip(&out)
                .filter(|(_, m)| m.is_none())
                .map(|(k, _)| k.0)
                .collect();
            if !missing.is_empty() {
                let mut read = journal.read(&missing).into_iter();
                for (slot, (id, _)) in out.iter_mut().zip(keys) {
                    if slot.is_none() {
                        *slot = read
                            .next()
                            .flatten()
                            .map(|r| Arc::new(Message::from_record(*id, r)));
                    }
                }
            }
            out
        });
    }

    /// The next ready message, loaded.
    fn next_ready(&mut self) -> Option<QueuedMessage> {
        self.load_head();
        loop {
            let e = self.ready.pop()?;
            match e.payload {
                Payload::Loaded(message) => {
                    // a quorum queue tells every consumer how often it was returned
                    let message = if self.args.is_quorum() {
                        with_delivery_count(&message, e.delivery_count)
                    } else {
                        message
                    };
                    return Some(QueuedMessage {
                        id: e.id,
                        message,
                        redelivered: e.redelivered,
                        expires_at: e.expires_at,
                        delivery_count: e.delivery_count,
                    });
                }
                // could not be loaded: it is gone from the store; nothing to deliver
                Payload::Paged { .. } => continue,
            }
        }
    }

    fn handle_cmd(&mut self, cmd: QueueCmd) -> Next {
        match cmd {
            QueueCmd::Publish { message, confirm } => self.enqueue(message, confirm),
            QueueCmd::Consume { consumer, reply } => {
                let result = self.add_consumer(*consumer);
                let _ = reply.send(result);
            }
            QueueCmd::Cancel(cancel) => {
                let CancelConsumer { epoch, tag, reply } = *cancel;
                self.consumers.cancel(epoch, &tag);
                if self.consumers.is_empty() {
                    self.touch();
                }
                let delete =
                    self.auto_delete && self.consumers.had_consumer() && self.consumers.is_empty();
                if delete {
                    // Gone before cancel-ok, so a declare right after the cancel misses it.
                    self.leave();
                }
                if let Some(reply) = reply {
                    self.deferred.push(Deferred::Cancelled(reply));
                }
                if delete {
                    return Next::Stop;
                }
            }
            QueueCmd::Get { no_ack, reply } => {
                self.touch();
                self.expire(self.clock.now());
                let got = self.next_ready().map(|m| {
                    self.count_redelivered(m.redelivered);
                    if no_ack {
                        self.counters.get_no_ack += 1;
                        self.metrics.messages_delivered_get_auto_ack.inc();
                        self.forget_message(&m);
                    } else {
                        self.counters.get += 1;
                        self.metrics.messages_delivered_get_manual_ack.inc();
                        self.journal.mark_delivered(m.id, m.message.persistent);
                        self.unacked.insert(m.id, m.clone());
                    }
                    (m, self.ready.len() as u32)
                });
                if got.is_none() {
                    self.counters.get_empty += 1;
                    self.metrics.messages_get_empty.inc();
                }
                let _ = reply.send(got);
            }
            QueueCmd::Ack(ids) => {
                for id in ids {
                    if let Some(m) = self.unacked.remove(&id) {
                        self.counters.ack += 1;
                        self.metrics.messages_acknowledged.inc();
                        self.forget_message(&m);
                    }
                }
            }
            QueueCmd::Reject(ids) => {
                for id in ids {
                    if let Some(m) = self.unacked.remove(&id) {
                        self.discard(Some(m.id), m.message, Reason::Rejected);
                    }
                }
            }
            QueueCmd::Requeue(ids) => {
                for id in ids {
                    if let Some(m) = self.unacked.remove(&id) {
                        self.requeue(m);
                    }
                }
            }
            QueueCmd::Reinsert(messages) => {
                for m in messages {
                    if self.unacked.remove(&m.id).is_none() {
                        // A no-ack delivery: it had left the store, so it goes back in.
                        self.journal.enqueue(m.id, m.message.clone(), None);
                    }
                    self.ready.put_back(m);
                }
            }
            QueueCmd::Purge { reply } => {
                let purged = self.ready.drain();
                for e in &purged {
                    self.journal.remove(e.id, e.persistent(), e.store_id());
                }
                let _ = reply.send(purged.len() as u32);
            }
            QueueCmd::Stats { reply } => {
                // as RabbitMQ counts: what a waiting consumer can take is not ready
                self.expire(self.clock.now());
                self.dispatch();
                let _ = reply.send(self.stats());
            }
            QueueCmd::Info { reply } => {
                self.expire(self.clock.now());
                self.dispatch();
                let _ = reply.send(self.info());
            }
            QueueCmd::Delete {
                if_unused,
                if_empty,
                reply,
            } => {
                let vhost = self.vhost_name();
                if if_unused && !self.consumers.is_empty() {
                    let _ = reply.send(Err(AmqpError::precondition_failed(format!(
                        "queue '{}' in vhost '{vhost}' in use",
                        self.name
                    ))));
                    return Next::Continue;
                }
                if if_empty && !self.ready.is_empty() {
                    let _ = reply.send(Err(AmqpError::precondition_failed(format!(
                        "queue '{}' in vhost '{vhost}' not empty",
                        self.name
                    ))));
                    return Next::Continue;
                }
                let n = self.ready.len() as u32;
                self.notify_consumers_cancelled();
                self.leave();
                self.deferred.push(Deferred::Deleted(reply, n));
                return Next::Stop;
            }
            QueueCmd::Touch => self.touch(),
            QueueCmd::Policy(change) => {
                let PolicyChange {
                    version,
                    applied,
                    args,
                } = *change;
                self.apply_policy(version, applied, args)
            }
            QueueCmd::Kick => {}
        }
        Next::Continue
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            messages: self.ready.len() as u32,
            consumers: self.consumers.len() as u32,
        }
    }

    fn count_redelivered(&mut self, redelivered: bool) {
        if redelivered {
            self.counters.redeliver += 1;
            self.metrics.messages_redelivered.inc();
        }
    }

    fn info(&mut self) -> QueueInfo {
        let unacked_bytes = self.unacked.values().map(|m| m.message.body().len() as u64);
        // what the store keeps: nothing without one, every message in a quorum queue,
        // else the persistent ones
        let messages_persistent = if !self.journal.stores(true) {
            0
        } else if self.journal.stores(false) {
            self.ready.len() + self.unacked.len()
        } else {
            let unacked = self.unacked.values().filter(|m| m.message.persistent);
            self.ready.persistent() + unacked.count()
        };
        let head_message_timestamp = match self.ready.head().map(|e| &e.payload) {
            Some(Payload::Loaded(m)) => peek_properties(m.properties())
                .ok()
                .and_then(|p| p.timestamp),
            _ => None,
        };
        QueueInfo {
            messages_persistent: messages_persistent as u32,
            messages_paged_out: self.ready.paged() as u32,
            consumer_utilisation: if self.consumers.is_empty() {
                0.0
            } else {
                self.utilisation.value(self.clock.now())
            },
            head_message_timestamp,
            exclusive_consumer_tag: self.consumers.exclusive_tag().map(str::to_owned),
            single_active_consumer_tag: self.consumers.single_active_tag().map(str::to_owned),
            messages_ready: self.ready.len() as u32,
            messages_unacknowledged: self.unacked.len() as u32,
            message_bytes_ready: self.ready.body_bytes() as u64,
            message_bytes_unacknowledged: unacked_bytes.sum(),
            consumers: self.consumers.len() as u32,
            counters: self.counters,
            rates: self.rates.rates(Instant::now(), self.counters),
            depth_rates: {
                let (ready, unacked) = (self.ready.len() as u64, self.unacked.len() as u64);
                self.depth_rates
                    .rates(Instant::now(), [ready + unacked, ready, unacked])
            },
            policy: self.policy.clone(),
            consumer_details: self
                .consumers
                .iter()
                .map(|(c, active)| ConsumerDetail {
                    tag: c.tag.to_string(),
                    connection_id: c.channel.connection_id,
                    channel_id: c.channel.channel_id,
                    ack_required: !c.no_ack,
                    exclusive: c.exclusive,
                    // a no-ack consumer's window is Warren's own, not a prefetch
                    prefetch_count: if c.no_ack { 0 } else { c.credit.limit() },
                    priority: c.priority,
                    active,
                })
                .collect(),
        }
    }

    fn expire(&mut self, now: Instant) {
        // A recovered head learns its per-message TTL when loaded; load it even with
        // nobody consuming, or it would never expire.
        self.load_head();
        let mut gone = Vec::new();
        if self.ready.drop_expired(now, &mut gone) > 0 {
            for e in gone {
                self.discard_entry(e, Reason::Expired);
            }
        }
    }

    /// A delivered message comes back, marked redelivered. A quorum queue counts the
    /// return and gives up past `x-delivery-limit`.
    fn requeue(&mut self, mut m: QueuedMessage) {
        m.redelivered = true;
        if self.args.is_quorum() {
            m.delivery_count += 1;
            if self
                .args
                .delivery_limit
                .is_some_and(|limit| u64::from(m.delivery_count) > limit)
            {
                self.discard(Some(m.id), m.message, Reason::DeliveryLimit);
                return;
            }
            self.journal
                .set_delivery_count(m.id, m.message.persistent, m.delivery_count);
        }
        self.ready.put_back(m);
    }

    fn enqueue(&mut self, message: Arc<Message>, confirm: Option<Arc<ConfirmToken>>) {
        if self.limits.refuses(
            self.ready.len(),
            self.ready.body_bytes(),
            message.body().len(),
        ) {
            // reject-publish: refused before any consumer sees it, as RabbitMQ does
            if let Some(token) = &confirm {
                token.fail();
            }
            if self.limits.overflow == Overflow::RejectPublishDlx {
                self.discard(None, message, Reason::Maxlen);
            }
            return;
        }
        self.counters.publish += 1;
        let id = self.next_id;
        self.next_id += 1;
        let now = self.clock.now();
        let expires_at = earliest(
            message.expiration.map(|ms| now + Duration::from_millis(ms)),
            self.args
                .message_ttl
                .map(|ms| now + Duration::from_millis(ms)),
        );
        let stored = self.journal.stores(message.persistent);
        // Past the memory budget a stored message is kept by its store id only; until the
        // writer has committed it (and let go), the weak pointer still reaches it.
        let page = stored
            && self.ready.loaded_bytes() > self.ram_limit
            && !self.ready.is_priority()
            && self.args.max_length_bytes.is_none();
        let weak = Arc::downgrade(&message);
        let store_id = message.store_id;
        if page {
            self.journal.enqueue(id, message, confirm);
            self.ready.push_paged(id, store_id, weak, false, expires_at);
        } else {
            self.journal.enqueue(id, message.clone(), confirm);
            self.ready.push(QueuedMessage {
                id,
                message,
                redelivered: false,
                expires_at,
                delivery_count: 0,
            });
        }
        self.limits.taken(self.ready.len(), self.ready.body_bytes());
        if self
            .limits
            .drops_head(self.ready.len(), self.ready.body_bytes())
        {
            // drop-head: a waiting consumer takes what it can first, as in RabbitMQ
            if !self.consumers.is_empty() {
                self.dispatch();
            }
            self.drop_head_over_limits();
        }
    }

    /// Under drop-head, the oldest ready messages go (dead-lettered as `maxlen`) until the
    /// queue is within its limits.
    pub(super) fn drop_head_over_limits(&mut self) {
        while self
            .limits
            .drops_head(self.ready.len(), self.ready.body_bytes())
        {
            let Some(e) = self.ready.pop() else {
                break;
            };
            self.discard_entry(e, Reason::Maxlen);
        }
    }

    fn add_consumer(&mut self, consumer: ConsumerLink) -> Result<(), AmqpError> {
        if self.args.is_quorum() && consumer.channel.prefetch.limit() > 0 {
            return Err(AmqpError::not_implemented(format!(
                "queue '{}' in vhost '{}' does not support global qos",
                self.name,
                self.vhost_name()
            )));
        }
        self.consumers.add(consumer).map_err(|_| {
            AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name,
                self.vhost_name()
            ))
        })
    }

    /// Hand ready messages to consumers with credit.
    fn dispatch(&mut self) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        // Blocked: messages wait and no consumer has credit for them. An empty queue
        // counts as keeping up.
        let mut blocked = false;
        while !self.ready.is_empty() {
            let Some(i) = self.consumers.next_with_credit() else {
                blocked = !self.consumers.is_empty();
                break;
            };
            let Some(message) = self.next_ready() else {
                self.consumers.get(i).give_back();
                break;
            };
            let no_ack = self.consumers.get(i).no_ack;
            self.count_redelivered(message.redelivered);
            if no_ack {
                self.counters.deliver_no_ack += 1;
                self.metrics.messages_delivered_consume_auto_ack.inc();
                self.forget_message(&message);
            } else {
                self.counters.deliver += 1;
                self.metrics.messages_delivered_consume_manual_ack.inc();
                self.journal
                    .mark_delivered(message.id, message.message.persistent);
                self.unacked.insert(message.id, message.clone());
            }
            let consumer = self.consumers.get(i);
            let event = ConnEvent::Deliver {
                channel_id: consumer.channel.channel_id,
                epoch: consumer.channel.epoch,
                consumer_tag: consumer.tag.clone(),
                queue: handle.clone(),
                message,
                no_ack,
            };
            if let Err(event) = consumer.channel.send(event) {
                // The connection is gone: its consumers go, the message goes back.
                let epoch = consumer.channel.epoch;
                consumer.give_back();
                if let ConnEvent::Deliver { message, .. } = event {
                    if self.unacked.remove(&message.id).is_none() {
                        self.journal
                            .enqueue(message.id, message.message.clone(), None);
                    }
                    self.ready.put_back(message);
                }
                self.consumers.remove_channel(epoch);
                if self.consumers.is_empty() {
                    self.touch();
                }
            }
        }
        let clock = &self.clock;
        self.utilisation.set(!blocked, || clock.now());
    }

    fn notify_consumers_cancelled(&mut self) {
        for c in self.consumers.drain() {
            let _ = c.channel.send(ConnEvent::ConsumerCancelled {
                channel_id: c.channel.channel_id,
                epoch: c.channel.epoch,
                consumer_tag: c.tag.clone(),
            });
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The same message with `x-delivery-count` set, as a quorum queue redelivers it.
fn with_delivery_count(m: &Arc<Message>, count: u32) -> Arc<Message> {
    let mut headers = headers_of(m.properties());
    headers.insert(
        "x-delivery-count".into(),
        amq_protocol::types::AMQPValue::LongLongInt(i64::from(count)),
    );
    let Ok(properties) = rewrite_properties(m.properties(), Some(&headers), false) else {
        return m.clone();
    };
    Arc::new(m.with_properties(properties))
}
