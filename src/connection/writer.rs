//! The writer task: the only code that writes to a client socket. The connection task sends
//! it already-encoded frames; it writes everything that has queued up, flushes once per batch
//! and only then gives back the no-ack credit of the deliveries it wrote (so a client that
//! stops reading stops receiving, instead of the broker buffering for it).
//!
//! The queue between them is a plain deque behind a mutex (held only to push or to take the
//! whole batch) and a `Notify`: unlike a channel it allocates nothing until used, which
//! matters for thousands of idle connections.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::broker::connections::Traffic;
use crate::broker::consumer::Credit;

#[derive(Debug)]
pub enum Out {
    Data(Bytes),
    /// Give back credit once everything before this item is on the socket.
    Release(Arc<Credit>, u32),
}

#[derive(Debug, Default)]
struct Shared {
    /// What is waiting to be written. Unbounded, because what fills it is bounded
    /// elsewhere: replies to the client's own requests, and deliveries limited by prefetch
    /// or the no-ack window that this task releases.
    queue: Mutex<VecDeque<Out>>,
    wake: Notify,
    /// The connection is done with us (set when its handle drops) or the socket failed.
    closed: std::sync::atomic::AtomicBool,
}

/// The connection's end of the writer. Dropping it lets the writer finish and close.
#[derive(Debug)]
pub struct WriterTx {
    shared: Arc<Shared>,
}

impl WriterTx {
    /// Queue `out`; false when the socket is gone.
    pub fn send(&self, out: Out) -> bool {
        if self
            .shared
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return false;
        }
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(out);
        self.shared.wake.notify_one();
        true
    }
}

impl Drop for WriterTx {
    fn drop(&mut self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.wake.notify_one();
    }
}

pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(
    w: W,
    traffic: Arc<Traffic>,
) -> (WriterTx, JoinHandle<()>) {
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(run(w, shared.clone(), traffic));
    (WriterTx { shared }, task)
}

async fn run<W: AsyncWrite + Unpin>(mut w: W, shared: Arc<Shared>, traffic: Arc<Traffic>) {
    let mut batch: VecDeque<Out> = VecDeque::new();
    let mut releases: Vec<(Arc<Credit>, u32)> = Vec::new();
    loop {
        {
            let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *queue, &mut batch);
        }
        if batch.is_empty() {
            if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
                // the connection dropped its handle: anything it queued is written
                if shared
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
                {
                    break;
                }
                continue;
            }
            shared.wake.notified().await;
            continue;
        }
        let mut failed = false;
        let mut written = 0;
        for out in batch.drain(..) {
            match out {
                Out::Data(bytes) if !failed => {
                    written += bytes.len();
                    failed = w.write_all(&bytes).await.is_err();
                }
                Out::Data(_) => {}
                Out::Release(credit, n) => releases.push((credit, n)),
            }
        }
        if failed || w.flush().await.is_err() {
            shared
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
            break;
        }
        traffic.sent(written);
        for (credit, n) in releases.drain(..) {
            credit.release(n);
        }
        // a burst's worth of capacity is not kept by an idle connection
        if batch.capacity() > 64 {
            batch = VecDeque::new();
        }
    }
    let _ = w.shutdown().await;
}
