//! `Confirms`: one channel's publisher confirms from confirm.select on: the sequence
//! numbers handed to publishes, which are still waiting for the store or a queue, and
//! which were settled (safe or failed) since the client was last told. Owned by the
//! channel's state; the connection settles publishes as their completions arrive and
//! asks, once per wake-up, for the basic.ack / basic.nack frames to send. Never touches a
//! socket or a queue.

use std::collections::BTreeSet;

#[derive(Debug)]
pub struct Confirms {
    /// The sequence number the next publish gets.
    next: u64,
    /// Publishes not settled yet.
    pending: BTreeSet<u64>,
    /// Settled since the last `emit`: safe ones and failed ones.
    acked: Vec<u64>,
    nacked: Vec<u64>,
}

impl Default for Confirms {
    fn default() -> Self {
        Confirms {
            next: 1,
            pending: BTreeSet::new(),
            acked: Vec::new(),
            nacked: Vec::new(),
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
        if !self.pending.remove(&seq) {
            return false;
        }
        let first = self.acked.is_empty() && self.nacked.is_empty();
        if ack {
            self.acked.push(seq);
        } else {
            self.nacked.push(seq);
        }
        first
    }

    /// How many publishes the next `emit` acknowledges.
    /// Publishes not confirmed yet (RabbitMQ's `messages_unconfirmed`).
    pub fn unconfirmed(&self) -> usize {
        self.pending.len()
    }

    pub fn acks_due(&self) -> usize {
        self.acked.len()
    }

    /// What was settled since the last call, framed as RabbitMQ 3.10 frames it
    /// (`send(delivery_tag, multiple, ack)`): acks first, then nacks. Of each kind, those
    /// below both the oldest publish still pending and the other kind's lowest go as one
    /// frame with `multiple` set (a lone ack excepted), the rest one by one.
    pub fn emit(&mut self, mut send: impl FnMut(u64, bool, bool)) {
        let mut acks = std::mem::take(&mut self.acked);
        let mut nacks = std::mem::take(&mut self.nacked);
        acks.sort_unstable();
        nacks.sort_unstable();
        match acks.as_slice() {
            [] => {}
            [one] => send(*one, false, true),
            _ => self.coalesce(&acks, &nacks, true, &mut send),
        }
        if !nacks.is_empty() {
            self.coalesce(&nacks, &acks, false, &mut send);
        }
    }

    fn coalesce(
        &self,
        seqs: &[u64],
        others: &[u64],
        ack: bool,
        send: &mut impl FnMut(u64, bool, bool),
    ) {
        let last = seqs.last().copied().unwrap_or(0);
        let unconfirmed = self.pending.first().copied().unwrap_or(last + 1);
        let cutoff = others.first().map_or(unconfirmed, |o| unconfirmed.min(*o));
        let below = seqs.partition_point(|s| *s < cutoff);
        if below > 0 {
            send(seqs[below - 1], true, ack);
        }
        for s in &seqs[below..] {
            send(*s, false, ack);
        }
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
    fn one_ack_alone_and_several_below_the_oldest_pending_as_one() {
        let mut c = Confirms::default();
        let seqs: Vec<u64> = (0..5).map(|_| c.assign()).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert!(c.settle(1, true));
        assert_eq!(emitted(&mut c), [(1, false, true)]);
        assert!(c.settle(2, true));
        assert!(!c.settle(3, true), "already marked for this wake-up");
        c.settle(5, true);
        // 4 is still pending: 2 and 3 go as one, 5 alone
        assert_eq!(emitted(&mut c), [(3, true, true), (5, false, true)]);
        assert_eq!(emitted(&mut c), []);
    }

    #[test]
    fn failed_publishes_are_nacked_after_the_acks_as_rabbitmq_does() {
        let mut c = Confirms::default();
        for _ in 0..5 {
            c.assign();
        }
        c.settle(1, true);
        assert_eq!(emitted(&mut c), [(1, false, true)]);
        // a lone nack with nothing pending below it: RabbitMQ sets multiple
        c.settle(2, false);
        assert_eq!(emitted(&mut c), [(2, true, false)]);
        for (seq, ok) in [(3, true), (4, false), (5, true)] {
            c.settle(seq, ok);
        }
        assert_eq!(
            emitted(&mut c),
            [(3, true, true), (5, false, true), (4, false, false)]
        );
    }
}
