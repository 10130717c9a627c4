//! An unbounded many-to-one channel that allocates nothing until something is sent: what
//! queues, the store and the management API send to a connection's task (deliveries,
//! confirms, close requests).
//!
//! tokio's unbounded channel allocates its first block of 32 slots when it is made; for
//! a connection's events that block alone was 2.6 KB, and a fleet of mostly idle
//! connections paid it on every one (the heap profile's second-largest item per
//! connection). Here the items sit in a `VecDeque` behind a mutex held only to push or pop,
//! and the waiting receiver's waker in an `AtomicWaker` (rather than a `Notify`, whose
//! waiter is 100 bytes in every select! that waits on it). After a burst the buffer is
//! given back once drained.
//!
//! A connection's loop looks at its inboxes on every wake-up, most of them caused by its
//! socket, so finding an inbox empty takes no lock: the receiver reads the `pending` flag
//! a sender raises after pushing, and finding it down registers its waker and reads it
//! once more.
//!
//! Only the receiver awaits; a send never does. A send fails, handing the item back, once
//! the receiver has closed or dropped, so a queue whose delivery finds the connection gone
//! keeps the message.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use atomic_waker::AtomicWaker;

/// A drained buffer bigger than this is released rather than kept for the next burst.
const KEEP_CAPACITY: usize = 64;

struct Shared<T> {
    state: Mutex<State<T>>,
    /// `state.items` is not empty: raised by a send after pushing, lowered by the
    /// receiver when it takes them, both under the lock; read without it.
    pending: AtomicBool,
    /// The receiver, when it found nothing and is waiting.
    waiting: AtomicWaker,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
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
    /// Only the receiver closes, so it knows without the lock.
    closed: bool,
}

pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
        }),
        pending: AtomicBool::new(false),
        waiting: AtomicWaker::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            taken: VecDeque::new(),
            closed: false,
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
        let first = !self.shared.pending.swap(true, Ordering::SeqCst);
        drop(state);
        // the receiver only waits on an empty inbox, so only the first item can find it
        // waiting
        if first {
            self.shared.waiting.wake();
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
    /// held. Finding nothing, it leaves `waker` to be woken by the next send, without
    /// taking the lock.
    fn take(&mut self, waker: Option<&Waker>) -> Result<T, Empty> {
        if let Some(item) = self.taken.pop_front() {
            if self.taken.is_empty() && self.taken.capacity() > KEEP_CAPACITY {
                self.taken = VecDeque::new();
            }
            return Ok(item);
        }
        if !self.shared.pending.load(Ordering::SeqCst) {
            let empty = if self.closed {
                Empty::Closed
            } else {
                Empty::Open
            };
            let Some(waker) = waker else {
                return Err(empty);
            };
            self.shared.waiting.register(waker);
            // looked at again after registering: a send that raised `pending` before the
            // registration may have found no waker to wake
            if !self.shared.pending.load(Ordering::SeqCst) {
                return Err(empty);
            }
        }
        let mut state = self.shared.state();
        self.shared.pending.store(false, Ordering::SeqCst);
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
        self.closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.closed = true;
        // dropped outside the lock: an item's drop may send to another inbox
        let items = std::mem::take(&mut state.items);
        drop(state);
        // a waker kept here would keep the receiving task's memory alive with the senders
        drop(self.shared.waiting.take());
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

    #[test]
    fn a_send_wakes_the_receiver_that_found_the_inbox_empty_once() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let woken = || count.0.load(Ordering::SeqCst);
        let (tx, mut rx) = unbounded();
        assert_eq!(rx.take(Some(&waker)), Err(Empty::Open));
        tx.send(1).expect("open");
        tx.send(2).expect("open");
        assert_eq!(
            woken(),
            1,
            "the first send wakes it, the second finds it woken"
        );
        assert_eq!(rx.take(Some(&waker)), Ok(1));
        assert_eq!(rx.take(Some(&waker)), Ok(2));
        assert_eq!(woken(), 1, "taking what is there registers nothing");
        assert_eq!(rx.take(Some(&waker)), Err(Empty::Open));
        tx.send(3).expect("open");
        assert_eq!(woken(), 2);
        assert_eq!(rx.try_recv(), Ok(3));
        rx.close();
        assert_eq!(rx.take(Some(&waker)), Err(Empty::Closed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_sent_from_other_threads_all_arrive_in_order() {
        let (tx, mut rx) = unbounded::<(u8, u32)>();
        let senders: Vec<_> = (0..2u8)
            .map(|s| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..20_000 {
                        tx.send((s, i)).expect("receiver alive");
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u32; 2];
        tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while next != [20_000; 2] {
                let (s, i) = rx.recv().await.expect("open until all arrived");
                assert_eq!(i, next[s as usize], "in order per sender");
                next[s as usize] += 1;
            }
        })
        .await
        .expect("every item arrives");
        for s in senders {
            s.await.expect("no panic");
        }
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
