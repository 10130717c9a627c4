//! `ReadyList`: a queue's messages waiting for a consumer. One FIFO per priority level
//! (one level unless the queue has `x-max-priority`), each kept in message-id order so a
//! requeued message returns to its original place. Expiry follows RabbitMQ: a message whose
//! TTL has passed is dropped when it reaches the head of its level, never delivered.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::broker::message::QueuedMessage;

#[derive(Debug)]
pub struct ReadyList {
    levels: Vec<VecDeque<QueuedMessage>>,
    len: usize,
}

impl ReadyList {
    pub fn new(max_priority: Option<u8>) -> Self {
        let n = max_priority.map_or(1, |p| p as usize + 1);
        Self {
            levels: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
        }
    }

    fn level(&self, m: &QueuedMessage) -> usize {
        (m.message.priority as usize).min(self.levels.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, m: QueuedMessage) {
        let l = self.level(&m);
        self.levels[l].push_back(m);
        self.len += 1;
    }

    /// Return a message to the place its id gives it within its level.
    pub fn put_back(&mut self, m: QueuedMessage) {
        let l = self.level(&m);
        let level = &mut self.levels[l];
        if level.front().is_none_or(|f| m.id < f.id) {
            level.push_front(m);
        } else {
            let at = level.partition_point(|x| x.id < m.id);
            level.insert(at, m);
        }
        self.len += 1;
    }

    /// The next message to deliver: highest priority first, oldest first within it.
    pub fn pop(&mut self) -> Option<QueuedMessage> {
        let m = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.len -= 1;
        Some(m)
    }

    /// Move expired messages at the head of every level into `out`; returns how many went.
    pub fn drop_expired(&mut self, now: Instant, out: &mut Vec<QueuedMessage>) -> usize {
        let mut dropped = 0;
        for level in &mut self.levels {
            while level
                .front()
                .is_some_and(|m| m.expires_at.is_some_and(|t| t <= now))
            {
                out.extend(level.pop_front());
                dropped += 1;
            }
        }
        self.len -= dropped;
        dropped
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

    /// Take every ready message out (purge).
    pub fn drain(&mut self) -> Vec<QueuedMessage> {
        self.len = 0;
        self.levels.iter_mut().flat_map(|l| l.drain(..)).collect()
    }

    /// When the earliest head-of-level message expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|l| l.front()?.expires_at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration;

    fn msg(id: u64, priority: u8, expires_at: Option<Instant>) -> QueuedMessage {
        QueuedMessage {
            id,
            message: Arc::new(Message {
                exchange: "".into(),
                routing_key: "q".into(),
                properties: Bytes::new(),
                body: Bytes::new(),
                persistent: false,
                priority,
                expiration: None,
                store_id: 0,
            }),
            redelivered: false,
            expires_at,
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
        let a = r.pop().unwrap();
        let b = r.pop().unwrap();
        let c = r.pop().unwrap();
        r.put_back(c);
        r.put_back(a);
        r.put_back(b);
        assert_eq!(ids(&mut r), vec![1, 2, 3, 4, 5]);
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
}
