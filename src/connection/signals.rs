//! `Signals`: the broker-wide news a connection must act on but almost never gets — a
//! memory or disk alarm, broker shutdown, its vhost or a user deleted — waited on as one
//! future that lives across the connection's wake-ups.
//!
//! Waiting on four `watch` receivers afresh in every turn of the connection's loop
//! registered and removed four waiters per turn, each under a lock: 5% of the broker's
//! CPU in a request/reply load that wakes the loop once a message. Here they are
//! registered once and stay until one fires, and `PolledOnWake` keeps the loop's
//! `select!` from polling them (a lock per receiver) on wake-ups that were not theirs.
//! Sent to by the broker's alarm, shutdown, vhost and user deletion; acts on nothing
//! itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
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
    /// Also report what happened before these receivers existed. A subscription starts
    /// with the current value seen, and the connection subscribes only after its
    /// handshake found the vhost and the user: a vhost deleted or a broker stopping in
    /// between (another thread can run the whole deletion while this one is descheduled)
    /// would otherwise leave the connection open on a vhost that is gone.
    pub fn catch_up(mut self, user_gone: bool) -> Self {
        if *self.vhost_deleted.borrow() {
            self.vhost_deleted.mark_changed();
        }
        if *self.shutdown.borrow() {
            self.shutdown.mark_changed();
        }
        if user_gone {
            self.users_deleted.mark_changed();
        }
        self
    }

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

/// A future that `select!` may poll on every wake-up of its task but that is polled
/// itself only after its own waker fired (and once at first): whatever it waits on
/// registered that waker, so an unwoken poll could only find it still pending.
pub struct PolledOnWake<F> {
    future: Pin<Box<F>>,
    woken: Arc<Woken>,
    /// Handed to `future`: raises `woken.flag` and wakes the task.
    waker: Waker,
}

struct Woken {
    flag: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::SeqCst);
        self.task.wake();
    }
}

impl<F: Future> PolledOnWake<F> {
    pub fn new(future: F) -> Self {
        let woken = Arc::new(Woken {
            flag: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        PolledOnWake {
            future: Box::pin(future),
            waker: Waker::from(woken.clone()),
            woken,
        }
    }

    /// Wait on `future` instead; it is polled at the next poll.
    pub fn set(&mut self, future: F) {
        self.future.set(future);
        self.woken.flag.store(true, Ordering::SeqCst);
    }
}

impl<F: Future> Future for PolledOnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        // registered before the flag is looked at: a wake after this point reaches the
        // task even if it lands between the two
        this.woken.task.register(cx.waker());
        if !this.woken.flag.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        this.future
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polled_only_when_its_own_waker_fired() {
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let counted = {
            let polls = polls.clone();
            let mut rx = rx;
            std::future::poll_fn(move |cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                Pin::new(&mut rx).poll(cx)
            })
        };
        let mut waiting = PolledOnWake::new(counted);
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
        // the task woken for something else polls it again: not passed on
        for _ in 0..5 {
            assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        tx.send(7).expect("receiver alive");
        assert_eq!(
            Pin::new(&mut waiting).poll(&mut cx),
            Poll::Ready(Ok(7)),
            "the send woke it, so it is polled and ready"
        );
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    /// The broker's side of the four channels.
    struct Senders {
        alarm: watch::Sender<bool>,
        _shutdown: watch::Sender<bool>,
        vhost_deleted: watch::Sender<bool>,
        users_deleted: watch::Sender<u64>,
    }

    /// A connection's signals over four quiet channels, and their senders.
    fn quiet_signals() -> (Senders, Signals) {
        let (alarm_tx, alarm) = watch::channel(false);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (vhost_tx, vhost_deleted) = watch::channel(false);
        let (users_tx, users_deleted) = watch::channel(0u64);
        let senders = Senders {
            alarm: alarm_tx,
            _shutdown: shutdown_tx,
            vhost_deleted: vhost_tx,
            users_deleted: users_tx,
        };
        let signals = Signals {
            alarm,
            shutdown,
            vhost_deleted,
            users_deleted,
        };
        (senders, signals)
    }

    async fn first(signals: Signals) -> Signal {
        tokio::time::timeout(std::time::Duration::from_secs(5), signals.next())
            .await
            .expect("the signal is seen, not waited for")
            .0
    }

    #[tokio::test]
    async fn a_vhost_deleted_before_the_connection_subscribed_still_closes_it() {
        let (tx, mut signals) = quiet_signals();
        // the deletion runs between the handshake and the connection's subscription
        tx.vhost_deleted.send_replace(true);
        signals.vhost_deleted = tx.vhost_deleted.subscribe();
        assert_eq!(first(signals.catch_up(false)).await, Signal::VhostDeleted);
    }

    #[tokio::test]
    async fn a_user_deleted_before_the_connection_subscribed_is_looked_at() {
        let (tx, mut signals) = quiet_signals();
        tx.users_deleted.send_modify(|n| *n += 1);
        signals.users_deleted = tx.users_deleted.subscribe();
        assert_eq!(first(signals.catch_up(true)).await, Signal::UserDeleted);
    }

    #[tokio::test]
    async fn a_signal_reaches_a_connection_waiting_through_it() {
        let (tx, quiet) = quiet_signals();
        let alarm_tx = tx.alarm;
        let mut signals = PolledOnWake::new(quiet.next());
        let raise = tokio::spawn(async move {
            tokio::task::yield_now().await;
            alarm_tx.send(true).expect("receiver alive");
            alarm_tx
        });
        let (signal, rest) = tokio::time::timeout(std::time::Duration::from_secs(5), &mut signals)
            .await
            .expect("the alarm arrives");
        assert_eq!(signal, Signal::Alarm(true));
        let alarm_tx = raise.await.expect("no panic");
        signals.set(rest.next());
        alarm_tx.send(false).expect("receiver alive");
        let (signal, _) = tokio::time::timeout(std::time::Duration::from_secs(5), &mut signals)
            .await
            .expect("the clear arrives");
        assert_eq!(signal, Signal::Alarm(false));
    }
}
