//! An unbounded many-to-one channel that allocates nothing until something is sent: what
//! queues, the store and the management API send to a connection's task (deliveries,
//! confirms, close requests).
//!
//! tokio's unbounded channel allocates its first block of 32 slots when it is made; for
//! a connection's events that block alone was 2.6 KB, and a fleet of mostly idle
//! connections paid it on every one (the heap profile's second-largest item per
//! connection). Here the items sit in a `VecDeque` behind a mutex held only to push or pop,
//! beside the waiting receiver's waker (rather than a `Notify`, whose waiter is 100 bytes
//! in every select! that waits on it). After a burst the buffer is given back once drained.
//!
//! Only the receiver awaits; a send never does. A send fails, handing the item back, once
//! the receiver has closed or dropped, so a queue whose delivery finds the connection gone
//! keeps the message.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// A drained buffer bigger than this is released rather than kept for the next burst.
const KEEP_CAPACITY: usize = 64;

struct Shared<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// The receiver, when it found nothing and is waiting.
    waiting: Option<Waker>,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // a panic while holding the lock cannot leave the deque half-changed
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Items already taken from the shared buffer, in order.
    taken: VecDeque<T>,
}

pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
            waiting: None,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("inbox::Sender").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("inbox::Receiver").finish_non_exhaustive()
    }
}

impl<T> Sender<T> {
    /// Queue `item` for the receiver; gives it back when the receiver is closed or gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let mut state = self.shared.state();
        if state.closed {
            return Err(item);
        }
        state.items.push_back(item);
        // the receiver only waits on an empty inbox, so only the first item finds it here
        let waiting = state.waiting.take();
        drop(state);
        if let Some(waker) = waiting {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; None once closed and drained.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| match self.take(Some(cx.waker())) {
            Ok(item) => Poll::Ready(Some(item)),
            Err(Empty::Closed) => Poll::Ready(None),
            Err(Empty::Open) => Poll::Pending,
        })
        .await
    }

    /// The next item if one is waiting.
    pub fn try_recv(&mut self) -> Result<T, Empty> {
        self.take(None)
    }

    /// The next item. Takes everything sent so far in one go, so a busy receiver locks
    /// once per batch rather than once per item, and its senders seldom find the lock
    /// held. Finding nothing, it leaves `waker` to be woken by the next send: registered
    /// under the lock a sender takes, so no send can slip in between.
    fn take(&mut self, waker: Option<&Waker>) -> Result<T, Empty> {
        if let Some(item) = self.taken.pop_front() {
            if self.taken.is_empty() && self.taken.capacity() > KEEP_CAPACITY {
                self.taken = VecDeque::new();
            }
            return Ok(item);
        }
        let mut state = self.shared.state();
        if state.items.is_empty() {
            if state.closed {
                return Err(Empty::Closed);
            }
            if let Some(waker) = waker {
                match &mut state.waiting {
                    Some(w) if w.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
            }
            return Err(Empty::Open);
        }
        std::mem::swap(&mut state.items, &mut self.taken);
        // the emptied buffer left with the senders keeps its room for the next burst,
        // unless the burst was large
        if state.items.capacity() > KEEP_CAPACITY {
            state.items = VecDeque::new();
        }
        drop(state);
        self.taken.pop_front().ok_or(Empty::Open)
    }

    /// Refuse further sends; what was already sent can still be received.
    pub fn close(&mut self) {
        self.shared.state().closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.closed = true;
        state.waiting = None;
        // dropped outside the lock: an item's drop may send to another inbox
        let items = std::mem::take(&mut state.items);
        drop(state);
        drop(items);
    }
}

/// Why `try_recv` found nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Empty {
    Open,
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_a_waiting_receiver_wakes() {
        let (tx, mut rx) = unbounded();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 3 {
                got.push(rx.recv().await.expect("open"));
            }
            got
        });
        tokio::task::yield_now().await;
        for i in 1..=3 {
            tx.send(i).expect("receiver alive");
        }
        assert_eq!(waiter.await.expect("no panic"), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn after_close_sends_come_back_and_what_was_sent_still_arrives() {
        let (tx, mut rx) = unbounded();
        tx.send("before").expect("open");
        rx.close();
        assert_eq!(tx.send("after"), Err("after"));
        assert_eq!(rx.recv().await, Some("before"));
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn a_dropped_receiver_hands_sends_back() {
        let (tx, rx) = unbounded();
        drop(rx);
        assert_eq!(tx.send(7), Err(7));
    }

    #[test]
    fn a_drained_burst_gives_its_buffer_back() {
        let (tx, mut rx) = unbounded();
        for i in 0..1000 {
            tx.send(i).expect("open");
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.state().items.capacity(), 0);
        assert_eq!(rx.taken.capacity(), 0);
        assert_eq!(rx.try_recv(), Err(Empty::Open));
    }
}
