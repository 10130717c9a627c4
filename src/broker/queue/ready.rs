//! `ReadyList`: a queue's messages waiting for a consumer. One FIFO per priority level
//! (one level unless the queue has `x-max-priority`), each kept in message-id order so a
//! requeued message returns to its original place. Expiry follows RabbitMQ: a message whose
//! TTL has passed is dropped when it reaches the head of its level, never delivered.
//!
//! Entries of a durable queue may be paged: only the store id is kept (and a weak pointer
//! in case the message is still in memory elsewhere), and the actor loads them back as
//! they come near the head. `loaded_bytes` is what the list holds in memory, `body_bytes`
//! the body bytes of loaded entries (RabbitMQ's `message_bytes_ready`; a queue with
//! `x-max-length-bytes` never pages, so for it the count is exact).
//!
//! Messages recovered after a restart get their per-message TTL when they are loaded,
//! counted from the restart (a queue's own TTL is applied at recovery).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use crate::model::message::{Message, QueuedMessage};

#[derive(Debug, Clone)]
pub enum Payload {
    Loaded(Arc<Message>),
    /// In the store only (the weak pointer still reaches it while the store's writer or
    /// another queue holds it).
    Paged {
        store_id: u64,
        weak: Weak<Message>,
    },
}

#[derive(Debug, Clone)]
pub struct ReadyEntry {
    pub id: u64,
    pub payload: Payload,
    pub redelivered: bool,
    pub expires_at: Option<Instant>,
    /// Quorum queues: how often it was returned.
    pub delivery_count: u32,
}

impl ReadyEntry {
    /// The store identity when this entry is stored, else 0.
    pub fn store_id(&self) -> u64 {
        match &self.payload {
            Payload::Loaded(m) => m.store_id,
            Payload::Paged { store_id, .. } => *store_id,
        }
    }

    pub fn persistent(&self) -> bool {
        match &self.payload {
            Payload::Loaded(m) => m.persistent,
            Payload::Paged { .. } => true,
        }
    }

    pub fn is_paged(&self) -> bool {
        matches!(self.payload, Payload::Paged { .. })
    }

    fn bytes(&self) -> usize {
        match &self.payload {
            Payload::Loaded(m) => m.body().len() + m.properties().len(),
            Payload::Paged { .. } => 0,
        }
    }

    fn body_bytes(&self) -> usize {
        match &self.payload {
            Payload::Loaded(m) => m.body().len(),
            Payload::Paged { .. } => 0,
        }
    }
}

impl From<QueuedMessage> for ReadyEntry {
    fn from(m: QueuedMessage) -> Self {
        ReadyEntry {
            id: m.id,
            payload: Payload::Loaded(m.message),
            redelivered: m.redelivered,
            expires_at: m.expires_at,
            delivery_count: m.delivery_count,
        }
    }
}

#[derive(Debug)]
pub struct ReadyList {
    levels: Vec<VecDeque<ReadyEntry>>,
    len: usize,
    loaded_bytes: usize,
    body_bytes: usize,
    /// Entries kept by store id only (RabbitMQ's `messages_paged_out`).
    paged: usize,
    /// Entries of persistent messages (paged ones always are).
    persistent: usize,
    /// Entries with ids up to this one were recovered at this instant: their per-message
    /// TTL runs from then.
    recovered: Option<(u64, Instant)>,
}

impl ReadyList {
    pub fn new(max_priority: Option<u8>) -> Self {
        let n = max_priority.map_or(1, |p| p as usize + 1);
        Self {
            levels: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            loaded_bytes: 0,
            body_bytes: 0,
            paged: 0,
            persistent: 0,
            recovered: None,
        }
    }

    /// Give recovered entries their delivery counts back (a quorum queue's returns).
    pub fn set_delivery_counts(&mut self, counts: &std::collections::HashMap<u64, u32>) {
        if counts.is_empty() {
            return;
        }
        for e in self.levels.iter_mut().flatten() {
            if let Some(n) = counts.get(&e.id) {
                e.delivery_count = *n;
            }
        }
    }

    /// Entries up to `last_id` came from the store at `at`.
    pub fn set_recovered(&mut self, last_id: u64, at: Instant) {
        self.recovered = Some((last_id, at));
    }

    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// How many entries are paged out (in the store only).
    pub fn paged(&self) -> usize {
        self.paged
    }

    /// How many entries hold persistent messages.
    pub fn persistent(&self) -> usize {
        self.persistent
    }

    /// The entry `pop` would return next.
    pub fn head(&self) -> Option<&ReadyEntry> {
        self.levels.iter().rev().find_map(|l| l.front())
    }

    fn added(&mut self, e: &ReadyEntry) {
        self.loaded_bytes += e.bytes();
        self.body_bytes += e.body_bytes();
        self.len += 1;
        self.paged += usize::from(e.is_paged());
        self.persistent += usize::from(e.persistent());
    }

    fn removed(&mut self, e: &ReadyEntry) {
        self.loaded_bytes -= e.bytes();
        self.body_bytes -= e.body_bytes();
        self.len -= 1;
        self.paged -= usize::from(e.is_paged());
        self.persistent -= usize::from(e.persistent());
    }

    pub fn is_priority(&self) -> bool {
        self.levels.len() > 1
    }

    fn level_of(&self, priority: u8) -> usize {
        (priority as usize).min(self.levels.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn loaded_bytes(&self) -> usize {
        self.loaded_bytes
    }

    /// Append a message at the tail of its priority level.
    pub fn push(&mut self, m: QueuedMessage) {
        let l = self.level_of(m.message.priority);
        let e = ReadyEntry::from(m);
        self.added(&e);
        self.levels[l].push_back(e);
    }

    /// Append a stored message without keeping it in memory (priority level 0; paged
    /// entries are only used for queues without priorities).
    pub fn push_paged(
        &mut self,
        id: u64,
        store_id: u64,
        weak: Weak<Message>,
        redelivered: bool,
        expires_at: Option<Instant>,
    ) {
        let e = ReadyEntry {
            id,
            payload: Payload::Paged { store_id, weak },
            redelivered,
            expires_at,
            delivery_count: 0,
        };
        self.added(&e);
        self.levels[0].push_back(e);
    }

    /// Return a message to the place its id gives it within its level.
    pub fn put_back(&mut self, m: QueuedMessage) {
        let l = self.level_of(m.message.priority);
        let e = ReadyEntry::from(m);
        self.added(&e);
        let level = &mut self.levels[l];
        if level.front().is_none_or(|f| e.id < f.id) {
            level.push_front(e);
        } else {
            let at = level.partition_point(|x| x.id < e.id);
            level.insert(at, e);
        }
    }

    /// The next entry to deliver: highest priority first, oldest first within it.
    pub fn pop(&mut self) -> Option<ReadyEntry> {
        let e = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.removed(&e);
        Some(e)
    }

    /// Whether the entry `pop` would return next is paged out.
    pub fn head_is_paged(&self) -> bool {
        self.head().is_some_and(ReadyEntry::is_paged)
    }

    /// Load the first `window` entries of every level that are paged, with `load`
    /// (store ids and weak pointers in, messages out, None for one that is gone, which
    /// is then dropped from the list).
    pub fn load_head(
        &mut self,
        window: usize,
        load: impl FnOnce(&[(u64, Weak<Message>)]) -> Vec<Option<Arc<Message>>>,
    ) {
        let mut wanted = Vec::new();
        for (l, level) in self.levels.iter().enumerate() {
            for (i, e) in level.iter().take(window).enumerate() {
                if let Payload::Paged { store_id, weak } = &e.payload {
                    wanted.push(((l, i), (*store_id, weak.clone())));
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let keys: Vec<(u64, Weak<Message>)> = wanted.iter().map(|(_, k)| k.clone()).collect();
        let loaded = load(&keys);
        let mut gone = Vec::new();
        for (((l, i), _), m) in wanted.into_iter().zip(loaded) {
            match m {
                Some(m) => {
                    self.loaded_bytes += m.body().len() + m.properties().len();
                    self.body_bytes += m.body().len();
                    self.paged -= 1;
                    // paged entries count as persistent; a loaded one says for itself
                    self.persistent -= usize::from(!m.persistent);
                    let e = &mut self.levels[l][i];
                    if let (Some((last, at)), Some(ttl)) = (self.recovered, m.expiration) {
                        if e.id <= last {
                            let t = at + std::time::Duration::from_millis(ttl);
                            e.expires_at = Some(e.expires_at.map_or(t, |x| x.min(t)));
                        }
                    }
                    e.payload = Payload::Loaded(m);
                }
                None => gone.push((l, i)),
            }
        }
        for (l, i) in gone.into_iter().rev() {
            self.levels[l].remove(i);
            self.len -= 1;
            self.paged -= 1;
            self.persistent -= 1;
        }
    }

    /// Move expired entries at the head of every level into `out`; returns how many went.
    pub fn drop_expired(&mut self, now: Instant, out: &mut Vec<ReadyEntry>) -> usize {
        let mut dropped = 0;
        for level in &mut self.levels {
            while level
                .front()
                .is_some_and(|m| m.expires_at.is_some_and(|t| t <= now))
            {
                if let Some(e) = level.pop_front() {
                    self.loaded_bytes -= e.bytes();
                    self.body_bytes -= e.body_bytes();
                    self.paged -= usize::from(e.is_paged());
                    self.persistent -= usize::from(e.persistent());
                    out.push(e);
                    dropped += 1;
                }
            }
        }
        self.len -= dropped;
        dropped
    }

    /// When the earliest head-of-level message expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|l| l.front()?.expires_at)
            .min()
    }

    /// Give back the memory of a drained backlog (kept when small, to avoid churn).
    pub fn shrink_if_empty(&mut self) {
        if self.len == 0 {
            for level in &mut self.levels {
                if level.capacity() > 1024 {
                    level.shrink_to(64);
                }
            }
        }
    }

    /// Take every ready entry out (purge).
    pub fn drain(&mut self) -> Vec<ReadyEntry> {
        self.len = 0;
        self.loaded_bytes = 0;
        self.body_bytes = 0;
        self.paged = 0;
        self.persistent = 0;
        self.levels.iter_mut().flat_map(|l| l.drain(..)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn message(priority: u8, store_id: u64) -> Arc<Message> {
        Arc::new(Message {
            content: crate::model::message::Content::new(
                Bytes::new(),
                Bytes::from_static(b"0123456789"),
            ),
            exchange: "".into(),
            routing_key: "q".into(),
            persistent: store_id != 0,
            priority,
            expiration: None,
            store_id,
        })
    }

    fn msg(id: u64, priority: u8, expires_at: Option<Instant>) -> QueuedMessage {
        QueuedMessage {
            id,
            message: message(priority, 0),
            redelivered: false,
            expires_at,
            delivery_count: 0,
        }
    }

    fn ids(r: &mut ReadyList) -> Vec<u64> {
        std::iter::from_fn(|| r.pop()).map(|m| m.id).collect()
    }

    #[test]
    fn fifo_without_priorities_and_requeue_keeps_place() {
        let mut r = ReadyList::new(None);
        for id in 1..=5 {
            r.push(msg(id, 9, None));
        }
        let back: Vec<QueuedMessage> = (0..3)
            .map(|_| {
                let e = r.pop().unwrap();
                let Payload::Loaded(m) = e.payload else {
                    panic!("loaded")
                };
                QueuedMessage {
                    id: e.id,
                    message: m,
                    redelivered: true,
                    expires_at: None,
                    delivery_count: 0,
                }
            })
            .collect();
        for m in back.into_iter().rev() {
            r.put_back(m);
        }
        assert_eq!(ids(&mut r), vec![1, 2, 3, 4, 5]);
        assert_eq!(r.loaded_bytes(), 0);
    }

    #[test]
    fn higher_priority_first_and_capped_at_max() {
        let mut r = ReadyList::new(Some(5));
        r.push(msg(1, 0, None));
        r.push(msg(2, 3, None));
        r.push(msg(3, 200, None)); // above max: treated as max
        r.push(msg(4, 3, None));
        assert_eq!(ids(&mut r), vec![3, 2, 4, 1]);
        assert!(r.is_empty());
    }

    #[test]
    fn expired_heads_are_dropped_and_next_expiry_is_the_earliest_head() {
        let now = Instant::now();
        let mut r = ReadyList::new(None);
        r.push(msg(1, 0, Some(now)));
        r.push(msg(2, 0, None));
        r.push(msg(3, 0, Some(now))); // not at the head: stays, as in RabbitMQ
        assert_eq!(r.next_expiry(), Some(now));
        let mut gone = vec![];
        assert_eq!(r.drop_expired(now, &mut gone), 1);
        assert_eq!(gone[0].id, 1);
        assert_eq!(r.next_expiry(), None);
        assert_eq!(r.len(), 2);
        let later = now + Duration::from_secs(1);
        assert_eq!(r.drop_expired(later, &mut gone), 0);
        assert_eq!(r.drain().len(), 2);
        assert!(r.is_empty());
    }

    #[test]
    fn paged_entries_load_near_the_head_and_vanished_ones_are_dropped() {
        let mut r = ReadyList::new(None);
        let kept = message(0, 7);
        r.push(QueuedMessage {
            id: 1,
            message: message(0, 5),
            redelivered: false,
            expires_at: None,
            delivery_count: 0,
        });
        r.push_paged(2, 6, Weak::new(), true, None);
        r.push_paged(3, 7, Arc::downgrade(&kept), false, None);
        r.push_paged(4, 8, Weak::new(), false, None);
        assert_eq!(r.loaded_bytes(), 10);
        assert_eq!((r.paged(), r.persistent()), (3, 4));
        assert!(!r.head_is_paged());
        r.pop();
        assert!(r.head_is_paged());
        r.load_head(2, |keys| {
            assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), vec![6, 7]);
            // 6 is gone from the store; 7 is still reachable through its weak pointer
            keys.iter().map(|(_, w)| w.upgrade()).collect()
        });
        assert_eq!(r.len(), 2);
        // 6 dropped, 7 loaded (persistent: it has a store id), 8 still paged
        assert_eq!((r.paged(), r.persistent()), (1, 2));
        let e = r.pop().unwrap();
        assert!(matches!(e.payload, Payload::Loaded(_)) && e.id == 3);
        assert!(r.head_is_paged());
        assert_eq!((r.paged(), r.persistent()), (1, 1));
        r.drain();
        assert_eq!((r.paged(), r.persistent()), (0, 0));
    }
}
