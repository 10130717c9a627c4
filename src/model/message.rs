//! `Message`: what a publisher sent, shared by every queue it was routed to. Properties and
//! body stay the `Bytes` that came off the socket; only dead-lettering and a quorum queue's
//! delivery count make a new property list (a new `Message`), never this one changed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// Bytes of message properties and bodies alive in this process (queued, unacked or in
/// flight). The memory alarm uses it to tell "memory full of messages" (blocking publishers
/// helps) from memory the allocator merely kept (blocking would not free it).
static MESSAGE_BYTES: AtomicU64 = AtomicU64::new(0);

pub fn message_bytes() -> u64 {
    MESSAGE_BYTES.load(Ordering::Relaxed)
}

/// Store identities, unique in this process: every message gets one when it is made (a
/// quorum queue stores transient messages too), and a store opened at start moves the
/// counter past everything it recovered. Shared by every broker in the process, which
/// keeps ids unique in each of their stores alike.
static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

pub fn next_store_id() -> u64 {
    NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed)
}

/// Never hand out `max_recovered` or anything below it again.
pub fn store_ids_above(max_recovered: u64) {
    NEXT_STORE_ID.fetch_max(max_recovered + 1, Ordering::Relaxed);
}

/// Counts one message's bytes in `MESSAGE_BYTES` for as long as the message lives.
#[derive(Debug)]
pub struct Accounted(u64);

impl Accounted {
    pub fn new(properties: &Bytes, body: &Bytes) -> Self {
        let n = (properties.len() + body.len()) as u64;
        MESSAGE_BYTES.fetch_add(n, Ordering::Relaxed);
        Accounted(n)
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        MESSAGE_BYTES.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// The parts of a persistent message that outlive the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub exchange: String,
    pub routing_key: String,
    pub properties: Bytes,
    pub body: Bytes,
}

#[derive(Debug)]
pub struct Message {
    pub exchange: Arc<str>,
    pub routing_key: Arc<str>,
    /// Raw basic property list (flags and values) as the publisher sent it.
    pub properties: Bytes,
    pub body: Bytes,
    /// delivery_mode = 2; only meaningful together with a durable queue.
    pub persistent: bool,
    /// The priority property (0 when absent); used by queues with x-max-priority.
    pub priority: u8,
    /// Per-message TTL in milliseconds from the expiration property.
    pub expiration: Option<u64>,
    /// Identity in the store, one per publish however many durable queues hold it (used
    /// only by the queues that store this message).
    pub store_id: u64,
    /// Built with `Accounted::new(&properties, &body)`.
    pub accounted: Accounted,
}

/// A message as one queue holds it: the queue's own sequence id gives requeued
/// messages their original place back.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// When this copy expires: the lower of the message's and the queue's TTL.
    pub expires_at: Option<tokio::time::Instant>,
    /// Quorum queues: how often this copy was returned (the `x-delivery-count` header).
    pub delivery_count: u32,
}

impl Message {
    /// This message with another property list (dead-lettering's history, a quorum
    /// queue's delivery count); the body is shared, not copied.
    pub fn with_properties(&self, properties: Bytes) -> Message {
        Message {
            accounted: Accounted::new(&properties, &self.body),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            properties,
            body: self.body.clone(),
            persistent: self.persistent,
            priority: self.priority,
            expiration: self.expiration,
            store_id: self.store_id,
        }
    }

    /// A persistent message read back from the store.
    pub fn from_record(store_id: u64, r: MessageRecord) -> Message {
        let peek = crate::protocol::content::peek_properties(&r.properties).unwrap_or_default();
        let expiration = peek
            .expiration
            .and_then(|range| std::str::from_utf8(&r.properties[range]).ok()?.parse().ok());
        Message {
            accounted: Accounted::new(&r.properties, &r.body),
            exchange: r.exchange.into(),
            routing_key: r.routing_key.into(),
            properties: r.properties,
            body: r.body,
            persistent: true,
            priority: peek.priority.unwrap_or(0),
            expiration,
            store_id,
        }
    }
}
