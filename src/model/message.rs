//! `Message`: what a publisher sent, shared by every queue it was routed to. Its `Content`
//! (properties and body) is set once: only dead-lettering and a quorum queue's delivery
//! count make a new property list (a new `Message`), never this one changed.

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

/// Below this size a message's properties and body are copied into one allocation of their
/// own; above it they stay the `Bytes` they came in (zero-copy slices of the read buffer).
/// A small message's slice would pin the whole read chunk, frame headers and method frames
/// included, for as long as it sits in a queue.
pub const JOIN_BELOW: usize = 2048;

/// A message's property list and body. Small ones share one exact-size buffer made from a
/// `Vec`, which needs no shared header while nobody clones it (deliveries, the store and
/// the management API read slices): one allocation per message where two `Bytes` sliced
/// from one buffer need a second, and 40 bytes in the message where two need 64. A queued
/// backlog of small messages is most of a busy broker's memory. Counts its bytes in
/// `MESSAGE_BYTES` for as long as it lives.
#[derive(Debug)]
pub struct Content(Parts);

#[derive(Debug)]
enum Parts {
    /// Properties then body; `split` is where the body starts.
    Joined {
        both: Bytes,
        split: u32,
    },
    Apart(Box<(Bytes, Bytes)>),
}

impl Content {
    pub fn new(properties: Bytes, body: Bytes) -> Content {
        let n = properties.len() + body.len();
        MESSAGE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        if n > JOIN_BELOW {
            return Content(Parts::Apart(Box::new((properties, body))));
        }
        let mut both = Vec::with_capacity(n);
        both.extend_from_slice(&properties);
        both.extend_from_slice(&body);
        Content(Parts::Joined {
            both: Bytes::from(both),
            split: properties.len() as u32,
        })
    }

    /// Raw basic property list (flags and values) as the publisher sent it.
    pub fn properties(&self) -> &[u8] {
        match &self.0 {
            Parts::Joined { both, split } => &both[..*split as usize],
            Parts::Apart(parts) => &parts.0,
        }
    }

    pub fn body(&self) -> &[u8] {
        match &self.0 {
            Parts::Joined { both, split } => &both[*split as usize..],
            Parts::Apart(parts) => &parts.1,
        }
    }

    /// The body as shared `Bytes` (a new message with other properties keeps it).
    pub fn body_bytes(&self) -> Bytes {
        match &self.0 {
            Parts::Joined { both, split } => both.slice(*split as usize..),
            Parts::Apart(parts) => parts.1.clone(),
        }
    }

    pub fn properties_bytes(&self) -> Bytes {
        match &self.0 {
            Parts::Joined { both, split } => both.slice(..*split as usize),
            Parts::Apart(parts) => parts.0.clone(),
        }
    }

    fn len(&self) -> usize {
        match &self.0 {
            Parts::Joined { both, .. } => both.len(),
            Parts::Apart(parts) => parts.0.len() + parts.1.len(),
        }
    }
}

impl Drop for Content {
    fn drop(&mut self) {
        MESSAGE_BYTES.fetch_sub(self.len() as u64, Ordering::Relaxed);
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
    pub content: Content,
    /// delivery_mode = 2; only meaningful together with a durable queue.
    pub persistent: bool,
    /// The priority property (0 when absent); used by queues with x-max-priority.
    pub priority: u8,
    /// Per-message TTL in milliseconds from the expiration property.
    pub expiration: Option<u64>,
    /// Identity in the store, one per publish however many durable queues hold it (used
    /// only by the queues that store this message).
    pub store_id: u64,
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
    pub fn properties(&self) -> &[u8] {
        self.content.properties()
    }

    pub fn body(&self) -> &[u8] {
        self.content.body()
    }

    /// This message with another property list (dead-lettering's history, a quorum
    /// queue's delivery count); a large body is shared, not copied.
    pub fn with_properties(&self, properties: Bytes) -> Message {
        Message {
            content: Content::new(properties, self.content.body_bytes()),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
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
            content: Content::new(r.properties, r.body),
            exchange: r.exchange.into(),
            routing_key: r.routing_key.into(),
            persistent: true,
            priority: peek.priority.unwrap_or(0),
            expiration,
            store_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_message_is_one_buffer_and_reads_back_as_sent() {
        let c = Content::new(
            Bytes::from_static(&[0x80, 0x00, 1, b'x']),
            Bytes::from("order 42"),
        );
        assert_eq!(c.properties(), &[0x80, 0x00, 1, b'x']);
        assert_eq!(c.body(), b"order 42");
        assert_eq!(c.body_bytes(), Bytes::from("order 42"));
        assert_eq!(
            c.properties_bytes(),
            Bytes::from_static(&[0x80, 0x00, 1, b'x'])
        );
        assert!(matches!(c.0, Parts::Joined { .. }));
        let empty = Content::new(Bytes::new(), Bytes::new());
        assert!(empty.properties().is_empty() && empty.body().is_empty());
    }

    #[test]
    fn a_large_body_is_kept_not_copied() {
        let body = Bytes::from(vec![7u8; JOIN_BELOW + 1]);
        let c = Content::new(Bytes::from_static(&[0, 0]), body.clone());
        assert_eq!(c.body().as_ptr(), body.as_ptr());
        assert_eq!(c.body_bytes().as_ptr(), body.as_ptr());
    }

    #[test]
    fn a_queued_message_stays_small() {
        // with its Arc's two counts, a message fits mimalloc's 128-byte size class; two
        // `Bytes` and a separate byte count took it to 160
        assert!(std::mem::size_of::<Message>() + 16 <= 128);
    }
}
