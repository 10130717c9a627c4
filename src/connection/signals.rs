//! `Signals`: the broker-wide news a connection must act on but almost never gets — a
//! memory or disk alarm, broker shutdown, its vhost or a user deleted — waited on as one
//! future that lives across the connection's wake-ups.
//!
//! Waiting on four `watch` receivers afresh in every turn of the connection's loop
//! registered and removed four waiters per turn, each under a lock: 5% of the broker's
//! CPU in a request/reply load that wakes the loop once a message. Here they are
//! registered once and stay until one fires. Sent to by the broker's alarm, shutdown,
//! vhost and user deletion; acts on nothing itself.

use tokio::sync::watch;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The resource alarm changed: raised or cleared.
    Alarm(bool),
    Shutdown,
    VhostDeleted,
    /// Some user was deleted (perhaps not this connection's).
    UserDeleted,
}

pub struct Signals {
    pub alarm: watch::Receiver<bool>,
    pub shutdown: watch::Receiver<bool>,
    pub vhost_deleted: watch::Receiver<bool>,
    pub users_deleted: watch::Receiver<u64>,
}

impl Signals {
    /// The next signal, and the receivers back for waiting on the one after.
    pub async fn next(mut self) -> (Signal, Self) {
        // a receiver whose sender is gone never fires again (shutdown's does: the broker
        // is going away)
        let signal = loop {
            tokio::select! {
                r = self.alarm.changed(), if sender_alive(&self.alarm) => if r.is_ok() {
                    break Signal::Alarm(*self.alarm.borrow_and_update());
                },
                _ = self.shutdown.changed() => break Signal::Shutdown,
                r = self.vhost_deleted.changed(), if sender_alive(&self.vhost_deleted) => if r.is_ok() {
                    break Signal::VhostDeleted;
                },
                r = self.users_deleted.changed(), if sender_alive(&self.users_deleted) => if r.is_ok() {
                    break Signal::UserDeleted;
                },
            }
        };
        (signal, self)
    }
}

fn sender_alive<T>(rx: &watch::Receiver<T>) -> bool {
    rx.has_changed().is_ok()
}
