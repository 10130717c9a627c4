//! Consumer utilisation (RabbitMQ's `consumer_utilisation`, also shown as
//! `consumer_capacity`): the share of time a queue could hand a message to a consumer at
//! once, rather than wait for one to ack and free prefetch. Kept by the queue's actor, which
//! says after each dispatch whether its consumers were blocked; the figure is a moving
//! average of active time with a one-second half-life, so a dashboard sees a queue whose
//! consumers fell behind a few seconds ago. Only state changes read the clock.

use std::time::Duration;

use tokio::time::Instant;

/// How fast old behaviour fades: after this long, it weighs half as much.
const HALF_LIFE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum Use {
    /// Consumers can take messages since `since`.
    Active { since: Instant, avg: f64 },
    /// Blocked since `since`, after `active` of activity that is not yet averaged in.
    Inactive {
        since: Instant,
        active: Duration,
        avg: f64,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Utilisation(Use);

impl Utilisation {
    /// A new queue counts as able to deliver.
    pub fn new(now: Instant) -> Self {
        Self(Use::Active {
            since: now,
            avg: 1.0,
        })
    }

    /// Whether the consumers could take a message now; `now` is read only on a change.
    pub fn set(&mut self, active: bool, now: impl FnOnce() -> Instant) {
        self.0 = match (self.0, active) {
            (Use::Active { since, avg }, false) => {
                let now = now();
                Use::Inactive {
                    since: now,
                    active: now.saturating_duration_since(since),
                    avg,
                }
            }
            (
                Use::Inactive {
                    since,
                    active: was_active,
                    avg,
                },
                true,
            ) => {
                let now = now();
                Use::Active {
                    since: now,
                    avg: average(was_active, now.saturating_duration_since(since), avg),
                }
            }
            (unchanged, _) => unchanged,
        };
    }

    /// The share of recent time (0.0 to 1.0) consumers could take messages at once.
    pub fn value(&self, now: Instant) -> f64 {
        match self.0 {
            Use::Active { since, avg } => {
                average(now.saturating_duration_since(since), Duration::ZERO, avg)
            }
            Use::Inactive { since, active, avg } => {
                average(active, now.saturating_duration_since(since), avg)
            }
        }
    }
}

/// Fold a stretch of `active` then `inactive` time into the average `avg`: the stretch's
/// active share, weighted by how long it lasted against the half-life.
fn average(active: Duration, inactive: Duration, avg: f64) -> f64 {
    let span = active + inactive;
    if span.is_zero() {
        return avg;
    }
    let share = active.as_secs_f64() / span.as_secs_f64();
    let keep = 0.5f64.powf(span.as_secs_f64() / HALF_LIFE.as_secs_f64());
    // written as a step from the old average, so a steady 1.0 stays exactly 1.0
    avg + (share - avg) * (1.0 - keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn consumers_that_always_keep_up_are_fully_used() {
        let start = Instant::now();
        let u = Utilisation::new(start);
        assert_eq!(u.value(at(start, 10_000)), 1.0);
    }

    #[test]
    fn blocked_consumers_fade_towards_zero_with_a_one_second_half_life() {
        let start = Instant::now();
        let mut u = Utilisation::new(start);
        u.set(false, || start);
        let after_one = u.value(at(start, 1_000));
        assert!((after_one - 0.5).abs() < 1e-9, "{after_one}");
        assert!(u.value(at(start, 10_000)) < 0.001);
        // unblocking starts the climb back
        u.set(true, || at(start, 10_000));
        let back = u.value(at(start, 11_000));
        assert!((back - 0.5).abs() < 0.001, "{back}");
    }

    #[test]
    fn half_the_time_blocked_settles_near_one_half() {
        let start = Instant::now();
        let mut u = Utilisation::new(start);
        let mut t = 0;
        for _ in 0..100 {
            u.set(false, || at(start, t));
            t += 100;
            u.set(true, || at(start, t));
            t += 100;
        }
        let v = u.value(at(start, t));
        assert!((v - 0.5).abs() < 0.05, "{v}");
    }

    #[test]
    fn repeating_the_same_state_reads_no_clock() {
        let start = Instant::now();
        let mut u = Utilisation::new(start);
        u.set(true, || panic!("no change, no clock"));
        u.set(false, || start);
        u.set(false, || panic!("no change, no clock"));
    }
}
