//! `ConsumerSet`: the consumers of one queue, owned by its actor. It answers one question,
//! "who gets the next message", and keeps what that needs: registration order, the round
//! robin position, the exclusive-consumer rule, consumer priorities (`x-priority`: the
//! highest-priority consumers with credit receive, equal ones in turn) and single active
//! consumer (only the oldest registration receives; the others wait in order and take over
//! when it goes). Credit lives in the links (prefetch and
//! no-ack windows, shared with the channels); this type never touches a message or a socket.

use crate::broker::consumer::ConsumerLink;

#[derive(Debug, Default)]
pub struct ConsumerSet {
    consumers: Vec<ConsumerLink>,
    round_robin: usize,
    /// Some consumer has ever been added (auto-delete only applies after the first).
    had_consumer: bool,
    /// `x-single-active-consumer`.
    single_active: bool,
    /// Some consumer has a priority other than 0 (otherwise plain round robin).
    prioritised: bool,
}

/// Why `add` refused a consumer.
#[derive(Debug, PartialEq, Eq)]
pub struct InExclusiveUse;

impl ConsumerSet {
    pub fn new(single_active: bool) -> Self {
        Self {
            single_active,
            ..Self::default()
        }
    }

    pub fn get(&self, i: usize) -> &ConsumerLink {
        &self.consumers[i]
    }

    /// Every consumer, in registration order, and whether it is the one receiving
    /// (always, unless single-active-consumer keeps all but the first waiting).
    pub fn iter(&self) -> impl Iterator<Item = (&ConsumerLink, bool)> {
        let single = self.single_active;
        self.consumers
            .iter()
            .enumerate()
            .map(move |(i, c)| (c, !single || i == 0))
    }

    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// The tag of the consumer holding the queue exclusively, if one does.
    pub fn exclusive_tag(&self) -> Option<&str> {
        self.consumers
            .iter()
            .find(|c| c.exclusive)
            .map(|c| c.tag.as_ref())
    }

    /// With single active consumer, the tag of the one receiving.
    pub fn single_active_tag(&self) -> Option<&str> {
        if !self.single_active {
            return None;
        }
        self.consumers.first().map(|c| c.tag.as_ref())
    }

    pub fn had_consumer(&self) -> bool {
        self.had_consumer
    }

    /// RabbitMQ's rule: an exclusive consumer needs the queue to itself, and nobody joins
    /// a queue that has one.
    pub fn add(&mut self, consumer: ConsumerLink) -> Result<(), InExclusiveUse> {
        let in_exclusive_use = self.consumers.iter().any(|c| c.exclusive);
        if in_exclusive_use || (consumer.exclusive && !self.consumers.is_empty()) {
            return Err(InExclusiveUse);
        }
        self.consumers.push(consumer);
        self.had_consumer = true;
        self.reprioritise();
        Ok(())
    }

    fn reprioritise(&mut self) {
        self.prioritised = self.consumers.iter().any(|c| c.priority != 0);
    }

    /// Remove the consumer `tag` of the channel opened as `epoch`.
    pub fn cancel(&mut self, epoch: u64, tag: &str) {
        self.consumers
            .retain(|c| !(c.is_on(epoch) && c.tag.as_ref() == tag));
        self.reprioritise();
    }

    /// Remove every consumer of a channel whose connection has gone.
    pub fn remove_channel(&mut self, epoch: u64) {
        self.consumers.retain(|c| c.channel.epoch != epoch);
        self.reprioritise();
    }

    /// The index of the next consumer in round-robin order that has credit, with one
    /// unit of that credit taken; None when nobody can take a message now.
    pub fn next_with_credit(&mut self) -> Option<usize> {
        if self.single_active {
            return self.consumers.first()?.try_take().then_some(0);
        }
        let n = self.consumers.len();
        if !self.prioritised {
            for _ in 0..n {
                let i = self.round_robin % n;
                self.round_robin = self.round_robin.wrapping_add(1);
                if self.consumers[i].try_take() {
                    return Some(i);
                }
            }
            return None;
        }
        let mut levels: Vec<i64> = self.consumers.iter().map(|c| c.priority).collect();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        levels.dedup();
        for level in levels {
            for k in 0..n {
                let i = (self.round_robin + k) % n;
                if self.consumers[i].priority == level && self.consumers[i].try_take() {
                    self.round_robin = i + 1;
                    return Some(i);
                }
            }
        }
        None
    }

    /// Take every consumer out (the queue is going away).
    pub fn drain(&mut self) -> Vec<ConsumerLink> {
        std::mem::take(&mut self.consumers)
    }
}
