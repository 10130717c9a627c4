//! Delayed messages: the `x-delayed-message` exchange type of RabbitMQ's community plugin,
//! as its clients use it (MassTransit, EasyNetQ, Rebus, Spring's `delayed` exchanges), but
//! without losing messages. A publish to such an exchange whose `x-delay` header asks for a
//! delay is handed to its vhost's delay task (`VHost::hold_back`); the task stores it
//! (whatever its delivery mode, as the plugin keeps every delayed message on disc), which
//! confirms it, and routes it through the exchange's `x-delayed-type` when it is due, with
//! `x-delay` turned negative as the plugin does, so it is not delayed again downstream.
//!
//! Memory stays bounded however many messages wait: the store indexes them by (due time,
//! id) per vhost and the task holds only a window of the earliest, paging the next ones in
//! when the window runs dry. Due times are wall-clock milliseconds on `broker::clock`, so
//! they survive a restart (a message due while the broker was down goes out at start) and
//! a manual clock moves them. A routed message leaves the store only once its stored
//! copies in the queues it reached are committed: a crash in between delivers it twice,
//! never not at all. The task never waits on a queue other than to hand it the message,
//! and never on a connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use amq_protocol::types::{AMQPValue, FieldTable};
use tokio::sync::mpsc;

use super::clock::Clock;
use super::queue::QueueHandle;
use super::vhost::VHost;
use crate::model::message::Message;
use crate::protocol::content::{headers_of, peek_properties, rewrite_properties};
use crate::store::{Completion, ConfirmToken, Store, StoreOp};

/// Most delayed messages a vhost's task holds in memory at once, and their bytes.
const WINDOW_MESSAGES: usize = 4096;
const WINDOW_BYTES: usize = 16 << 20;
/// Publishes waiting for the task; a full mailbox slows the publishers.
const MAILBOX: usize = 1024;
/// The plugin's bound (Erlang's longest timer): a longer `x-delay` is not a delay.
const MAX_DELAY_MS: i128 = 4_294_967_295;

/// How long a message published to a delayed exchange waits, read from its `x-delay`
/// header as the plugin reads it: an integer of any width, a float (truncated) or a
/// string of digits; None (routed at once) when absent, not a number, not positive or
/// beyond the plugin's bound.
pub fn requested_delay(headers: &FieldTable) -> Option<u64> {
    let ms: i128 = match headers.inner().get("x-delay")? {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        AMQPValue::Float(f) => f.trunc() as i128,
        AMQPValue::Double(f) => f.trunc() as i128,
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        AMQPValue::ShortString(s) => s.as_str().parse().ok()?,
        _ => return None,
    };
    (ms > 0 && ms <= MAX_DELAY_MS).then_some(ms as u64)
}

/// The message as it will be delivered: `x-delay` set to minus the delay (a signed
/// 32-bit integer, as the plugin writes it), so a delayed exchange further on routes it
/// at once and consumers can tell it was delayed.
pub fn as_released(message: &Message, delay: u64) -> Message {
    let mut headers = headers_of(message.properties());
    let negated = -(delay as i64);
    let value = match i32::try_from(negated) {
        Ok(n) => AMQPValue::LongInt(n),
        Err(_) => AMQPValue::LongLongInt(negated),
    };
    headers.insert("x-delay".into(), value);
    match rewrite_properties(message.properties(), Some(&headers), false) {
        Ok(properties) => message.with_properties(properties),
        Err(_) => message.with_properties(message.content.properties_bytes()),
    }
}

fn size(m: &Message) -> usize {
    m.properties().len() + m.body().len()
}

/// One publish held back until `due` (wall-clock milliseconds).
#[derive(Debug)]
pub struct DelayRequest {
    pub message: Arc<Message>,
    pub due: u64,
    /// The publisher's confirm: fires once the message is stored.
    pub confirm: Option<Arc<ConfirmToken>>,
}

/// Start a vhost's delay task; it ends when the vhost (the sender's owner) goes.
pub fn spawn(
    vhost: Weak<VHost>,
    name: Arc<str>,
    store: Option<Store>,
    clock: Clock,
) -> mpsc::Sender<DelayRequest> {
    let (tx, rx) = mpsc::channel(MAILBOX);
    let schedule = Schedule {
        vhost,
        name,
        store,
        clock,
        window: BTreeMap::new(),
        bytes: 0,
        complete: false,
        horizon: (0, 0),
    };
    tokio::spawn(schedule.run(rx));
    tx
}

struct Schedule {
    vhost: Weak<VHost>,
    name: Arc<str>,
    store: Option<Store>,
    clock: Clock,
    /// The earliest waiting messages by (due, store id).
    window: BTreeMap<(u64, u64), Arc<Message>>,
    bytes: usize,
    /// The window holds every waiting message (else only those up to `horizon`; the rest
    /// are in the store only).
    complete: bool,
    horizon: (u64, u64),
}

impl Schedule {
    async fn run(mut self, mut rx: mpsc::Receiver<DelayRequest>) {
        let mut advanced = self.clock.advanced();
        loop {
            if self.window.is_empty() && !self.complete {
                self.page_in().await;
            }
            // what is already due goes before any wait: a manual clock's sleep wakes
            // only when the clock moves again
            if !self.release_due().await {
                return;
            }
            if self.window.is_empty() && !self.complete {
                continue;
            }
            let deadline = self
                .window
                .keys()
                .next()
                .map(|(due, _)| self.clock.instant_of_wall(*due));
            tokio::select! {
                request = rx.recv() => {
                    let Some(first) = request else { return };
                    let mut batch = vec![first];
                    while batch.len() < 256 {
                        match rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    self.accept(batch).await;
                }
                _ = self.clock.sleep_until(deadline, &mut advanced) => {}
            }
        }
    }

    /// Store a batch of new delayed messages (their confirms fire on commit) and keep in
    /// the window those that belong there.
    async fn accept(&mut self, batch: Vec<DelayRequest>) {
        if let Some(store) = &self.store {
            let ops = batch
                .iter()
                .map(|r| StoreOp::DelayPut {
                    vhost: self.name.clone(),
                    due: r.due,
                    message: r.message.clone(),
                    confirm: r.confirm.clone(),
                })
                .collect();
            store.submit(ops).await;
        }
        for r in batch {
            let key = (r.due, r.message.store_id);
            if self.complete || key <= self.horizon {
                self.bytes += size(&r.message);
                self.window.insert(key, r.message);
            }
        }
        // Without a store there is nowhere else to keep them.
        if self.store.is_some() {
            while self.window.len() > 1
                && (self.window.len() > WINDOW_MESSAGES || self.bytes > WINDOW_BYTES)
            {
                if let Some((_, m)) = self.window.pop_last() {
                    self.bytes -= size(&m);
                }
                if let Some(last) = self.window.keys().next_back() {
                    self.horizon = *last;
                    self.complete = false;
                }
            }
        }
    }

    /// Load the next page of the schedule from the store, after the horizon. Everything
    /// this task stored before is committed first, so nothing is skipped; what was
    /// released is at or before the horizon, so nothing is loaded twice.
    async fn page_in(&mut self) {
        let Some(store) = self.store.clone() else {
            self.complete = true;
            return;
        };
        store.commit(Vec::new()).await;
        let keys = store.delayed(&self.name, Some(self.horizon), WINDOW_MESSAGES);
        let records = store.read(&keys.iter().map(|(_, id)| *id).collect::<Vec<_>>());
        let mut full = keys.len() >= WINDOW_MESSAGES;
        let mut lost = Vec::new();
        for (key, record) in keys.into_iter().zip(records) {
            self.horizon = key;
            let Some(record) = record else {
                lost.push(StoreOp::DelayRemove {
                    vhost: self.name.clone(),
                    due: key.0,
                    store_id: key.1,
                });
                continue;
            };
            let persistent = peek_properties(&record.properties)
                .map(|p| p.persistent())
                .unwrap_or(false);
            let message = Message {
                persistent,
                ..Message::from_record(key.1, record)
            };
            self.bytes += size(&message);
            self.window.insert(key, Arc::new(message));
            if self.bytes > WINDOW_BYTES {
                full = true;
                break;
            }
        }
        self.complete = !full;
        store.submit(lost).await;
    }

    /// Route every message whose time has come, in due order. False when the vhost is gone.
    async fn release_due(&mut self) -> bool {
        loop {
            let now = self.clock.wall_ms();
            let Some(entry) = self.window.first_entry() else {
                return true;
            };
            if entry.key().0 > now {
                return true;
            }
            let ((due, _), message) = entry.remove_entry();
            self.bytes -= size(&message);
            let Some(vhost) = self.vhost.upgrade() else {
                return false;
            };
            self.route(&vhost, due, message).await;
        }
    }

    /// Route one due message as a publish to its exchange would be (a deleted exchange
    /// routes it nowhere; its alternate exchange applies as usual).
    async fn route(&self, vhost: &VHost, due: u64, message: Arc<Message>) {
        let release = self.store.as_ref().map(|store| {
            ConfirmToken::new(Completion::Then(
                store.clone(),
                vec![StoreOp::DelayRemove {
                    vhost: self.name.clone(),
                    due,
                    store_id: message.store_id,
                }],
            ))
        });
        let targets = vhost.targets(&message);
        let metrics = &vhost.metrics;
        if targets.is_empty() {
            vhost.count_unroutable(false);
        } else {
            metrics.messages_routed.inc();
        }
        QueueHandle::publish_to(targets, &message, release.as_ref(), |q| {
            q.takes_confirm(&message)
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn delay_of(v: AMQPValue) -> Option<u64> {
        let mut t = FieldTable::default();
        t.insert("x-delay".into(), v);
        requested_delay(&t)
    }

    #[test]
    fn x_delay_is_read_as_the_plugin_reads_it() {
        assert_eq!(delay_of(AMQPValue::LongInt(5000)), Some(5000));
        assert_eq!(delay_of(AMQPValue::LongLongInt(1)), Some(1));
        assert_eq!(delay_of(AMQPValue::ShortInt(7)), Some(7));
        assert_eq!(delay_of(AMQPValue::Double(250.9)), Some(250));
        assert_eq!(
            delay_of(AMQPValue::LongString(LongString::from("1500"))),
            Some(1500)
        );
        assert_eq!(delay_of(AMQPValue::LongInt(0)), None);
        assert_eq!(delay_of(AMQPValue::LongInt(-5)), None);
        assert_eq!(delay_of(AMQPValue::LongLongInt(4_294_967_296)), None);
        assert_eq!(delay_of(AMQPValue::Boolean(true)), None);
        assert_eq!(
            delay_of(AMQPValue::LongString(LongString::from("soon"))),
            None
        );
        assert_eq!(requested_delay(&FieldTable::default()), None);
    }
}
