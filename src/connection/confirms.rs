//! `Confirms`: one channel's publisher confirms from confirm.select on: the sequence
//! numbers handed to publishes, which are still waiting for the store or a queue, which
//! failed, and how far the client has been told. Owned by the channel's state; the
//! connection settles publishes as their completions arrive and asks, once per wake-up,
//! for the basic.ack / basic.nack frames to send. Never touches a socket or a queue.

use std::collections::BTreeSet;

#[derive(Debug)]
pub struct Confirms {
    /// The sequence number the next publish gets.
    next: u64,
    /// Publishes not settled yet; no ack may cover them.
    pending: BTreeSet<u64>,
    /// Publishes settled as failed, to be nacked one by one.
    nacked: BTreeSet<u64>,
    /// The highest sequence number the client has been told about.
    told_upto: u64,
    /// Something was settled since the last `emit`.
    dirty: bool,
}

impl Default for Confirms {
    fn default() -> Self {
        Confirms {
            next: 1,
            pending: BTreeSet::new(),
            nacked: BTreeSet::new(),
            told_upto: 0,
            dirty: false,
        }
    }
}

impl Confirms {
    /// The next publish's sequence number; it waits until `settle` is called for it.
    pub fn assign(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.pending.insert(seq);
        seq
    }

    /// Publish `seq` is safe (ack) or failed (nack). Returns true the first time
    /// something is settled since the last `emit`, so the caller marks the channel once.
    pub fn settle(&mut self, seq: u64, ack: bool) -> bool {
        self.pending.remove(&seq);
        if !ack {
            self.nacked.insert(seq);
        }
        !std::mem::replace(&mut self.dirty, true)
    }

    /// Everything settled below the oldest publish still pending, as few frames as
    /// possible: `send(delivery_tag, multiple, ack)`. Acks never overtake a pending
    /// publish, and each failed one gets a basic.nack of its own, in sequence.
    pub fn emit(&mut self, mut send: impl FnMut(u64, bool, bool)) {
        self.dirty = false;
        let limit = self
            .pending
            .first()
            .map_or(self.next - 1, |oldest| oldest - 1);
        if limit <= self.told_upto {
            return;
        }
        let mut from = self.told_upto;
        while let Some(n) = self.nacked.first().copied().filter(|n| *n <= limit) {
            self.nacked.remove(&n);
            if n - 1 > from {
                send(n - 1, n - 1 - from > 1, true);
            }
            send(n, false, false);
            from = n;
        }
        if limit > from {
            send(limit, limit - from > 1, true);
        }
        self.told_upto = limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted(c: &mut Confirms) -> Vec<(u64, bool, bool)> {
        let mut out = Vec::new();
        c.emit(|tag, multiple, ack| out.push((tag, multiple, ack)));
        out
    }

    #[test]
    fn acks_wait_for_the_oldest_pending_publish_then_cover_all_at_once() {
        let mut c = Confirms::default();
        let seqs: Vec<u64> = (0..4).map(|_| c.assign()).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert!(c.settle(2, true));
        assert!(!c.settle(3, true), "already marked for this wake-up");
        assert_eq!(emitted(&mut c), []);
        c.settle(1, true);
        assert_eq!(emitted(&mut c), [(3, true, true)]);
        c.settle(4, true);
        assert_eq!(emitted(&mut c), [(4, false, true)]);
        assert_eq!(emitted(&mut c), []);
    }

    #[test]
    fn a_failed_publish_gets_its_own_nack_between_acks() {
        let mut c = Confirms::default();
        for _ in 0..5 {
            c.assign();
        }
        for (seq, ok) in [(1, true), (2, true), (3, false), (4, true), (5, false)] {
            c.settle(seq, ok);
        }
        assert_eq!(
            emitted(&mut c),
            [
                (2, true, true),
                (3, false, false),
                (4, false, true),
                (5, false, false)
            ]
        );
    }
}
