//! Length limits (`x-max-length`, `x-max-length-bytes`) and what a full queue does
//! (`x-overflow`), as RabbitMQ counts them: ready messages only, bytes of their bodies.
//! Pure arithmetic over the ready list's counts; the actor acts on the answers.
//!
//! Classic and quorum queues refuse differently under reject-publish, and Warren follows
//! each: a classic queue refuses the message that would take it over the limit; a quorum
//! queue (`rabbit_fifo`) takes messages until it is over the limit, then refuses until it
//! has drained to 80% of it.

use super::args::{Overflow, QueueArgs};

#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    quorum: bool,
    /// A quorum queue went over its limit and refuses until below the soft limit.
    blocked: bool,
}

/// `rabbit_fifo`'s low watermark, as a share of the limit.
const SOFT_LIMIT: f64 = 0.8;

impl Limits {
    pub fn new(args: &QueueArgs) -> Self {
        Self {
            max_length: args.max_length,
            max_length_bytes: args.max_length_bytes,
            overflow: args.overflow,
            quorum: args.is_quorum(),
            blocked: false,
        }
    }

    /// Under reject-publish, is one more message of `size` bytes refused now?
    pub fn refuses(&mut self, len: usize, bytes: usize, size: usize) -> bool {
        if self.overflow == Overflow::DropHead {
            return false;
        }
        if !self.quorum {
            return self.would_overflow(len, bytes, size);
        }
        let below = |limit: Option<u64>, n: usize| {
            limit.is_none_or(|m| n as u64 <= (m as f64 * SOFT_LIMIT) as u64)
        };
        if self.blocked && below(self.max_length, len) && below(self.max_length_bytes, bytes) {
            self.blocked = false;
        }
        self.blocked
    }

    /// A message was taken: a quorum queue now over its limit starts refusing.
    pub fn taken(&mut self, len: usize, bytes: usize) {
        if self.quorum && self.overflow != Overflow::DropHead && self.over(len, bytes) {
            self.blocked = true;
        }
    }

    /// Does the head go now to bring the queue back within its limits (drop-head)?
    pub fn drops_head(&self, len: usize, bytes: usize) -> bool {
        self.overflow == Overflow::DropHead && self.over(len, bytes)
    }

    pub fn any(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }

    /// With `len` ready messages of `bytes` body bytes, would one more of `size` bytes be
    /// over a limit (reject-publish refuses it then)?
    pub fn would_overflow(&self, len: usize, bytes: usize, size: usize) -> bool {
        self.max_length.is_some_and(|m| len as u64 + 1 > m)
            || self
                .max_length_bytes
                .is_some_and(|m| (bytes + size) as u64 > m)
    }

    /// Is the queue over a limit now (drop-head drops from the head until it is not)?
    pub fn over(&self, len: usize, bytes: usize) -> bool {
        self.max_length.is_some_and(|m| len as u64 > m)
            || self.max_length_bytes.is_some_and(|m| bytes as u64 > m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_bytes_count_as_rabbitmq_does() {
        let l = Limits::new(&QueueArgs {
            max_length: Some(2),
            max_length_bytes: Some(100),
            ..Default::default()
        });
        assert!(!l.would_overflow(1, 10, 10));
        assert!(l.would_overflow(2, 10, 10));
        assert!(l.would_overflow(0, 95, 10));
        assert!(!l.over(2, 100));
        assert!(l.over(3, 0) && l.over(0, 101));
        assert!(!Limits::default().any());
    }

    #[test]
    fn a_quorum_queue_refuses_once_over_the_limit_until_drained_to_80_percent() {
        let mut l = Limits::new(&QueueArgs {
            max_length: Some(10),
            overflow: Overflow::RejectPublish,
            queue_type: super::super::args::QueueType::Quorum,
            ..Default::default()
        });
        let mut len = 0;
        while !l.refuses(len, 0, 1) {
            len += 1;
            l.taken(len, 0);
        }
        assert_eq!(len, 11, "as rabbit_fifo: one over the limit is taken");
        assert!(l.refuses(9, 0, 1));
        assert!(!l.refuses(8, 0, 1));
    }
}
