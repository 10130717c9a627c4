//! Length limits (`x-max-length`, `x-max-length-bytes`) and what a full queue does
//! (`x-overflow`), as RabbitMQ counts them: ready messages only, bytes of their bodies.
//! Pure arithmetic over the ready list's counts; the actor acts on the answers.

use super::args::{Overflow, QueueArgs};

#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    pub overflow: Overflow,
}

impl Limits {
    pub fn new(args: &QueueArgs) -> Self {
        Self {
            max_length: args.max_length,
            max_length_bytes: args.max_length_bytes,
            overflow: args.overflow,
        }
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
}
