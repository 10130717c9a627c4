//! `QueueActor`: the single owner of one queue's ready messages, delivered-but-unacked
//! messages and consumers. It receives `QueueCmd`s from channels and publishers, hands
//! messages to consumers that have credit (round robin) and never awaits a connection.
//! It owns the queue's time-based work (message expiry) and, for a durable queue, tells the
//! store about every persistent message that enters or leaves it, submitting one batch per
//! wake-up (awaited: a slow disk slows this queue's publishers, never its consumers' acks).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ready::{Payload, ReadyEntry, ReadyList};
use super::{QueueCmd, QueueHandle, QueueInit, QueueStats};
use crate::broker::consumer::{ConnEvent, ConsumerLink};
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::vhost::VHost;
use crate::protocol::AmqpError;
use crate::store::{ConfirmToken, Store, StoreOp};

/// How many entries at the head of each priority level are kept loaded.
const PAGE_IN_WINDOW: usize = 512;

pub struct QueueActor {
    handle: Weak<QueueHandle>,
    name: Arc<str>,
    auto_delete: bool,
    /// x-message-ttl in milliseconds.
    message_ttl: Option<u64>,
    vhost: Weak<VHost>,
    ready: ReadyList,
    unacked: HashMap<u64, QueuedMessage>,
    consumers: Vec<ConsumerLink>,
    next_id: u64,
    round_robin: usize,
    had_consumer: bool,
    store: Option<(Store, Arc<str>)>,
    /// Bytes of ready bodies kept in memory before stored messages are paged out.
    ram_limit: usize,
    /// Store changes made during this wake-up, submitted as one batch.
    store_ops: Vec<StoreOp>,
    /// Replies that may only go out once this wake-up's store changes are submitted, so
    /// nothing the client does next can overtake them in the store's queue.
    deferred: Vec<Deferred>,
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
        let mut ready = ReadyList::new(handle.args.max_priority);
        let next_id = init.recovered.last().map_or(1, |(seq, _, _)| seq + 1);
        // Recovered messages start in the store only; the head is loaded on demand. A
        // priority queue needs each message's priority to place it, so it loads them all.
        if ready.is_priority() {
            if let Some((store, _)) = &init.store {
                let ids: Vec<u64> = init.recovered.iter().map(|(_, id, _)| *id).collect();
                for ((seq, id, delivered), record) in init.recovered.iter().zip(store.read(&ids)) {
                    if let Some(r) = record {
                        ready.push(QueuedMessage {
                            id: *seq,
                            message: Arc::new(Message::from_record(*id, r)),
                            redelivered: *delivered,
                            expires_at: None,
                        });
                    }
                }
            }
        } else {
            for (seq, id, delivered) in init.recovered {
                ready.push_paged(seq, id, Weak::new(), delivered, None);
            }
        }
        Self {
            handle: weak,
            name: handle.name.clone(),
            auto_delete: handle.auto_delete,
            message_ttl: handle.args.message_ttl,
            vhost,
            ready,
            unacked: HashMap::new(),
            consumers: Vec::new(),
            next_id,
            round_robin: 0,
            had_consumer: false,
            store: init.store,
            ram_limit: init.ram_limit,
            store_ops: Vec::new(),
            deferred: Vec::new(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<QueueCmd>) {
        let mut stopped = false;
        while !stopped {
            // The actor owns its time-based work: it wakes when the head message expires.
            let expiry = self.ready.next_expiry();
            let cmd = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => Some(cmd),
                    None => break,
                },
                _ = sleep_until(expiry), if expiry.is_some() => None,
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
                self.expire(Instant::now());
                self.dispatch();
                self.ready.shrink_if_empty();
            }
            if let Some((store, _)) = &self.store {
                if !self.store_ops.is_empty() {
                    store.submit(std::mem::take(&mut self.store_ops)).await;
                }
            }
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
        }
        // Anything still in the mailbox after a delete is dropped with the queue.
        rx.close();
    }

    /// Leave the vhost (tables, bindings, durable definitions) and the store.
    fn leave(&mut self) {
        if let (Some(vhost), Some(handle)) = (self.vhost.upgrade(), self.handle.upgrade()) {
            let ops = vhost.remove_queue(&handle);
            if self.store.is_some() {
                self.store_ops.extend(ops);
            }
        }
        if let Some((_, key)) = &self.store {
            self.store_ops
                .push(StoreOp::DeleteQueue { queue: key.clone() });
        }
    }

    fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "/".into())
    }

    /// Whether this copy of a message lives in the store.
    fn stored(&self, m: &Message) -> bool {
        self.store.is_some() && m.persistent
    }

    /// Record that a message left the queue for good.
    fn forget_message(&mut self, m: &QueuedMessage) {
        self.forget_stored(m.id, m.message.persistent, m.message.store_id);
    }

    fn forget_entry(&mut self, e: &ReadyEntry) {
        self.forget_stored(e.id, e.persistent(), e.store_id());
    }

    fn forget_stored(&mut self, seq: u64, persistent: bool, store_id: u64) {
        if let (true, Some((_, key))) = (persistent, &self.store) {
            self.store_ops.push(StoreOp::Remove {
                queue: key.clone(),
                seq,
                store_id,
            });
        }
    }

    /// Bring paged entries near the head back into memory, in one store read.
    fn load_head(&mut self) {
        let Some((store, _)) = &self.store else {
            return;
        };
        if !self.ready.head_is_paged() {
            return;
        }
        let store = store.clone();
        self.ready.load_head(PAGE_IN_WINDOW, |keys| {
            let mut out: Vec<Option<Arc<Message>>> =
                keys.iter().map(|(_, weak)| weak.upgrade()).collect();
            let missing: Vec<u64> = keys
                .iter()
                .zip(&out)
                .filter(|(_, m)| m.is_none())
                .map(|(k, _)| k.0)
                .collect();
            if !missing.is_empty() {
                let mut read = store.read(&missing).into_iter();
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
                    return Some(QueuedMessage {
                        id: e.id,
                        message,
                        redelivered: e.redelivered,
                        expires_at: e.expires_at,
                    })
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
                let result = self.add_consumer(consumer);
                let _ = reply.send(result);
            }
            QueueCmd::Cancel { epoch, tag, reply } => {
                self.consumers.retain(|c| !(c.is_on(epoch) && c.tag == tag));
                let delete = self.auto_delete && self.had_consumer && self.consumers.is_empty();
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
                self.expire(Instant::now());
                let got = self.next_ready().map(|m| {
                    if no_ack {
                        self.forget_message(&m);
                    } else {
                        self.mark_delivered(&m);
                        self.unacked.insert(m.id, m.clone());
                    }
                    (m, self.ready.len() as u32)
                });
                let _ = reply.send(got);
            }
            QueueCmd::Settle(ids) => {
                for id in ids {
                    if let Some(m) = self.unacked.remove(&id) {
                        self.forget_message(&m);
                    }
                }
            }
            QueueCmd::Requeue(ids) => {
                for id in ids {
                    if let Some(mut m) = self.unacked.remove(&id) {
                        m.redelivered = true;
                        self.ready.put_back(m);
                    }
                }
            }
            QueueCmd::Reinsert(messages) => {
                for m in messages {
                    if self.unacked.remove(&m.id).is_none() {
                        // A no-ack delivery: it had left the store, so it goes back in.
                        self.restore(&m);
                    }
                    self.ready.put_back(m);
                }
            }
            QueueCmd::Purge { reply } => {
                let purged = self.ready.drain();
                for e in &purged {
                    self.forget_entry(e);
                }
                let _ = reply.send(purged.len() as u32);
            }
            QueueCmd::Stats { reply } => {
                self.expire(Instant::now());
                let _ = reply.send(self.stats());
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

    fn expire(&mut self, now: Instant) {
        let mut gone = Vec::new();
        if self.ready.drop_expired(now, &mut gone) > 0 {
            for e in &gone {
                self.forget_entry(e);
            }
        }
    }

    fn enqueue(&mut self, message: Arc<Message>, confirm: Option<Arc<ConfirmToken>>) {
        let id = self.next_id;
        self.next_id += 1;
        let ttl = match (message.expiration, self.message_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expires_at = ttl.map(|ms| Instant::now() + Duration::from_millis(ms));
        if let (true, Some((_, key))) = (self.stored(&message), &self.store) {
            // Past the memory budget a stored message is kept by its store id only; until
            // the writer has committed it (and let go), the weak pointer still reaches it.
            let page = self.ready.loaded_bytes() > self.ram_limit && !self.ready.is_priority();
            let weak = Arc::downgrade(&message);
            let store_id = message.store_id;
            self.store_ops.push(StoreOp::Enqueue {
                queue: key.clone(),
                seq: id,
                message: message.clone(),
                confirm,
            });
            if page {
                self.ready.push_paged(id, store_id, weak, false, expires_at);
                return;
            }
        }
        self.ready.push(QueuedMessage {
            id,
            message,
            redelivered: false,
            expires_at,
        });
    }

    /// Put a message that had left the store back into it, at its old position.
    fn restore(&mut self, m: &QueuedMessage) {
        if let (true, Some((_, key))) = (self.stored(&m.message), &self.store) {
            self.store_ops.push(StoreOp::Enqueue {
                queue: key.clone(),
                seq: m.id,
                message: m.message.clone(),
                confirm: None,
            });
        }
    }

    /// First delivery of a stored message: after a restart it comes back redelivered.
    fn mark_delivered(&mut self, m: &QueuedMessage) {
        if m.redelivered {
            return;
        }
        if let (true, Some((_, key))) = (self.stored(&m.message), &self.store) {
            self.store_ops.push(StoreOp::MarkDelivered {
                queue: key.clone(),
                seq: m.id,
            });
        }
    }

    fn add_consumer(&mut self, consumer: ConsumerLink) -> Result<(), AmqpError> {
        let in_exclusive_use = self.consumers.iter().any(|c| c.exclusive);
        if in_exclusive_use || (consumer.exclusive && !self.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name,
                self.vhost_name()
            )));
        }
        self.consumers.push(consumer);
        self.had_consumer = true;
        Ok(())
    }

    /// Hand ready messages to consumers with credit, round robin.
    fn dispatch(&mut self) {
        let mut idle = 0;
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        while !self.ready.is_empty() && !self.consumers.is_empty() && idle < self.consumers.len() {
            let i = self.round_robin % self.consumers.len();
            self.round_robin = self.round_robin.wrapping_add(1);
            if !self.consumers[i].try_take() {
                idle += 1;
                continue;
            }
            idle = 0;
            let Some(message) = self.next_ready() else {
                self.consumers[i].give_back();
                break;
            };
            let no_ack = self.consumers[i].no_ack;
            if no_ack {
                self.forget_message(&message);
            } else {
                self.mark_delivered(&message);
                self.unacked.insert(message.id, message.clone());
            }
            let consumer = &self.consumers[i];
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
                        self.restore(&message);
                    }
                    self.ready.put_back(message);
                }
                self.consumers.retain(|c| c.channel.epoch != epoch);
            }
        }
    }

    fn notify_consumers_cancelled(&mut self) {
        for c in self.consumers.drain(..) {
            let _ = c.channel.send(ConnEvent::ConsumerCancelled {
                channel_id: c.channel.channel_id,
                epoch: c.channel.epoch,
                consumer_tag: c.tag.clone(),
            });
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
