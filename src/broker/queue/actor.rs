//! `QueueActor`: the single owner of one queue's ready messages, delivered-but-unacked
//! messages and consumers. It receives `QueueCmd`s from channels and publishers, hands
//! messages to consumers that have credit (round robin) and never awaits a connection.
//! Ready messages are kept in id order, so a requeued message goes back to its place.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ready::ReadyList;
use super::{QueueCmd, QueueHandle, QueueStats};
use crate::broker::consumer::{ConnEvent, ConsumerLink};
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::vhost::VHost;
use crate::protocol::AmqpError;

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
}

enum Next {
    Continue,
    Stop,
}

impl QueueActor {
    pub fn new(weak: Weak<QueueHandle>, handle: &QueueHandle, vhost: Weak<VHost>) -> Self {
        Self {
            handle: weak,
            name: handle.name.clone(),
            auto_delete: handle.auto_delete,
            message_ttl: handle.args.message_ttl,
            vhost,
            ready: ReadyList::new(handle.args.max_priority),
            unacked: HashMap::new(),
            consumers: Vec::new(),
            next_id: 1,
            round_robin: 0,
            had_consumer: false,
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<QueueCmd>) {
        loop {
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
                if let Next::Stop = self.handle_cmd(cmd) {
                    break;
                }
                // Drain whatever else is already waiting before delivering, so a burst
                // of publishes is handed out in one pass.
                let mut stop = false;
                for _ in 0..256 {
                    match rx.try_recv() {
                        Ok(cmd) => {
                            if let Next::Stop = self.handle_cmd(cmd) {
                                stop = true;
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if stop {
                    break;
                }
            }
            self.ready.drop_expired(Instant::now());
            self.dispatch();
        }
        // Anything still in the mailbox after a delete is dropped with the queue.
        rx.close();
    }

    fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "/".into())
    }

    fn handle_cmd(&mut self, cmd: QueueCmd) -> Next {
        match cmd {
            QueueCmd::Publish(message) => self.enqueue(message),
            QueueCmd::Consume { consumer, reply } => {
                let result = self.add_consumer(consumer);
                let _ = reply.send(result);
            }
            QueueCmd::Cancel { epoch, tag, reply } => {
                self.consumers.retain(|c| !(c.is_on(epoch) && c.tag == tag));
                // Gone from the vhost before cancel-ok, so a declare right after it misses.
                let delete = self.auto_delete && self.had_consumer && self.consumers.is_empty();
                if delete {
                    self.auto_delete_now();
                }
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                if delete {
                    return Next::Stop;
                }
            }
            QueueCmd::Get { no_ack, reply } => {
                self.ready.drop_expired(Instant::now());
                let got = self.ready.pop().map(|m| {
                    if !no_ack {
                        self.unacked.insert(m.id, m.clone());
                    }
                    (m, self.ready.len() as u32)
                });
                let _ = reply.send(got);
            }
            QueueCmd::Settle(ids) => {
                for id in ids {
                    self.unacked.remove(&id);
                }
            }
            QueueCmd::Requeue(ids) => {
                let mut back: Vec<QueuedMessage> = ids
                    .iter()
                    .filter_map(|id| self.unacked.remove(id))
                    .collect();
                for m in &mut back {
                    m.redelivered = true;
                }
                self.put_back(back);
            }
            QueueCmd::Reinsert(messages) => {
                for m in &messages {
                    self.unacked.remove(&m.id);
                }
                self.put_back(messages);
            }
            QueueCmd::Purge { reply } => {
                let n = self.ready.clear() as u32;
                let _ = reply.send(n);
            }
            QueueCmd::Stats { reply } => {
                self.ready.drop_expired(Instant::now());
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
                let _ = reply.send(Ok(n));
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

    fn enqueue(&mut self, message: Arc<Message>) {
        let id = self.next_id;
        self.next_id += 1;
        let ttl = match (message.expiration, self.message_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.ready.push(QueuedMessage {
            id,
            message,
            redelivered: false,
            expires_at: ttl.map(|ms| Instant::now() + Duration::from_millis(ms)),
        });
    }

    /// Return messages to the ready list at the place their id gives them.
    fn put_back(&mut self, messages: Vec<QueuedMessage>) {
        for m in messages {
            self.ready.put_back(m);
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
            let consumer = &self.consumers[i];
            if !consumer.try_take() {
                idle += 1;
                continue;
            }
            idle = 0;
            let Some(message) = self.ready.pop() else {
                consumer.give_back();
                break;
            };
            if !consumer.no_ack {
                self.unacked.insert(message.id, message.clone());
            }
            let event = ConnEvent::Deliver {
                channel_id: consumer.channel.channel_id,
                epoch: consumer.channel.epoch,
                consumer_tag: consumer.tag.clone(),
                queue: handle.clone(),
                message,
                no_ack: consumer.no_ack,
            };
            if let Err(mpsc::error::SendError(event)) = consumer.channel.events.send(event) {
                // The connection is gone: its consumers go, the message goes back.
                let epoch = consumer.channel.epoch;
                consumer.give_back();
                if let ConnEvent::Deliver { message, .. } = event {
                    self.unacked.remove(&message.id);
                    self.put_back(vec![message]);
                }
                self.consumers.retain(|c| c.channel.epoch != epoch);
            }
        }
    }

    fn notify_consumers_cancelled(&mut self) {
        for c in self.consumers.drain(..) {
            let _ = c.channel.events.send(ConnEvent::ConsumerCancelled {
                channel_id: c.channel.channel_id,
                epoch: c.channel.epoch,
                consumer_tag: c.tag.clone(),
            });
        }
    }

    fn auto_delete_now(&mut self) {
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.forget_queue(&self.name);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
