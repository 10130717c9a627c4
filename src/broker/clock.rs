//! The clock every time-based behaviour reads: message and queue TTL, `x-expires`, the
//! consumer timeout, delayed messages. Normally the real monotonic clock. With
//! `manual_clock` it stands still and moves only when told (`advance`), so a test suite
//! can run a 30-minute order timeout in milliseconds; whoever sleeps until a clock time
//! also watches `advanced` and looks again when it moves. Heartbeats, handshakes and rates stay on real time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    start: Instant,
    /// Wall-clock milliseconds when the clock was made.
    start_wall_ms: u64,
    /// Nanoseconds advanced since `start`.
    offset: AtomicU64,
    advanced: watch::Sender<u64>,
}

impl Clock {
    /// The real clock, or with `manual` one that moves only by `advance`.
    pub fn new(manual: bool) -> Self {
        Self {
            manual: manual.then(|| {
                Arc::new(Manual {
                    start: Instant::now(),
                    start_wall_ms: system_ns() / 1_000_000,
                    offset: AtomicU64::new(0),
                    advanced: watch::channel(0).0,
                })
            }),
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => m.start + Duration::from_nanos(m.offset.load(Ordering::Acquire)),
        }
    }

    /// Milliseconds since the Unix epoch by this clock: what outlives a restart (delayed
    /// messages' due times) is kept in wall-clock time. A manual clock starts at the real
    /// time and moves with `advance`.
    pub fn wall_ms(&self) -> u64 {
        match &self.manual {
            None => system_ns() / 1_000_000,
            Some(m) => m.start_wall_ms + m.offset.load(Ordering::Acquire) / 1_000_000,
        }
    }

    /// `wall_ms` rounded up: a time computed from it is never early.
    pub fn wall_ms_ceil(&self) -> u64 {
        match &self.manual {
            None => system_ns().div_ceil(1_000_000),
            Some(m) => m.start_wall_ms + m.offset.load(Ordering::Acquire).div_ceil(1_000_000),
        }
    }

    /// The monotonic instant at which `wall_ms()` will read `due` (now if it has passed).
    pub fn instant_of_wall(&self, due: u64) -> Instant {
        self.now() + Duration::from_millis(due.saturating_sub(self.wall_ms()))
    }

    /// Move a manual clock forward and wake everyone waiting on it; false for the real
    /// clock, which nobody moves.
    pub fn advance(&self, by: Duration) -> bool {
        let Some(m) = &self.manual else {
            return false;
        };
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        m.offset.fetch_add(nanos, Ordering::AcqRel);
        m.advanced.send_modify(|n| *n += 1);
        true
    }

    /// A manual clock's moves, for tasks that wait until a clock time.
    pub fn advanced(&self) -> Option<watch::Receiver<u64>> {
        self.manual.as_ref().map(|m| m.advanced.subscribe())
    }

    /// Sleep until the clock reads `at`: on the real clock a timer; on a manual one only
    /// a move of the clock wakes it (the caller looks at `now` again).
    pub async fn sleep_until(
        &self,
        at: Option<Instant>,
        advanced: &mut Option<watch::Receiver<u64>>,
    ) {
        match (at, advanced) {
            (_, Some(rx)) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await
                }
            }
            (Some(at), None) => tokio::time::sleep_until(at).await,
            (None, None) => std::future::pending().await,
        }
    }
}

fn system_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_advanced_and_wakes_its_sleepers() {
        let clock = Clock::new(true);
        let t0 = clock.now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(clock.now(), t0);
        let mut rx = clock.advanced();
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock
                    .sleep_until(Some(t0 + Duration::from_secs(1800)), &mut rx)
                    .await;
                clock.now()
            })
        };
        assert!(clock.advance(Duration::from_secs(1800)));
        assert_eq!(waiter.await.unwrap(), t0 + Duration::from_secs(1800));
        assert!(!Clock::new(false).advance(Duration::from_secs(1)));
    }
}
