//! The memory alarm, RabbitMQ's `vm_memory_high_watermark`: a task samples the broker's own
//! resident memory and raises the alarm above the limit. Connections that publish are then
//! sent `connection.blocked` and no longer read until it clears; consumers keep draining.
//! The limit can be changed while running (like `rabbitmqctl set_vm_memory_high_watermark`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct MemoryAlarm {
    limit: AtomicU64,
    raised: watch::Sender<bool>,
}

/// Total RAM from /proc/meminfo, in bytes.
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// This process's resident memory, in bytes.
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

impl MemoryAlarm {
    /// The limit is `absolute` bytes when non-zero, else `relative` of total RAM.
    pub fn new(relative: f64, absolute: u64) -> Arc<Self> {
        let limit = if absolute > 0 {
            absolute
        } else {
            total_memory().map_or(u64::MAX, |t| (t as f64 * relative) as u64)
        };
        let (raised, _) = watch::channel(false);
        Arc::new(Self {
            limit: AtomicU64::new(limit),
            raised,
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Change the limit; the alarm follows at once.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
        self.check();
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.raised.subscribe()
    }

    pub fn is_raised(&self) -> bool {
        *self.raised.borrow()
    }

    fn check(&self) {
        let Some(rss) = resident_memory() else { return };
        let over = rss > self.limit();
        self.raised.send_if_modified(|raised| {
            if *raised != over {
                if over {
                    tracing::warn!("memory alarm: {rss} bytes resident, above the {} byte watermark; blocking publishers", self.limit());
                } else {
                    tracing::info!("memory alarm cleared: {rss} bytes resident");
                }
                *raised = over;
                true
            } else {
                false
            }
        });
    }

    /// Sample until the alarm is dropped by everyone else.
    pub fn spawn_monitor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(alarm) => alarm.check(),
                    None => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn alarm_follows_the_limit() {
        let alarm = MemoryAlarm::new(0.0, u64::MAX);
        let rx = alarm.subscribe();
        alarm.set_limit(1);
        assert!(*rx.borrow() && alarm.is_raised());
        alarm.set_limit(u64::MAX);
        assert!(!alarm.is_raised());
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_memory().unwrap_or(0) > 0);
    }
}
