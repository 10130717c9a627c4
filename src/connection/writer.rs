//! The writer task: the only code that waits to write to a client socket. The connection
//! task sends it already-encoded frames; it writes everything that has queued up, flushes
//! once per batch and only then gives back the no-ack credit of the deliveries it wrote (so
//! a client that stops reading stops receiving, instead of the broker buffering for it).
//!
//! On plain TCP, what the connection sends while the writer has nothing queued or in hand
//! is written at once with `try_write`, on the connection's own task: a reply or a delivery
//! then leaves without waking a second task, often on the other core (that hand-over was a
//! large part of a lone round trip's cost). Whatever does not fit in the socket's buffer
//! goes to the writer task, so the connection never waits on a slow reader.
//!
//! The queue between them is a plain deque behind a mutex (held only to push, to take the
//! whole batch, or for one non-blocking write) and a `Notify`: unlike a channel it
//! allocates nothing until used, which matters for thousands of idle connections.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::socket::Direct;
use crate::broker::connections::Traffic;
use crate::broker::consumer::Credit;

#[derive(Debug)]
pub enum Out {
    Data(Bytes),
    /// Give back credit once everything before this item is on the socket.
    Release(Arc<Credit>, u32),
}

#[derive(Debug, Default)]
struct Pending {
    /// What is waiting to be written. Unbounded, because what fills it is bounded
    /// elsewhere: replies to the client's own requests, and deliveries limited by prefetch
    /// or the no-ack window that this task releases.
    items: VecDeque<Out>,
    /// The writer task holds a batch it has not finished writing: nothing may overtake it.
    writing: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Pending>,
    wake: Notify,
    /// The connection is done with us (set when its handle drops) or the socket failed.
    closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection's end of the writer. Dropping it lets the writer finish and close.
#[derive(Debug)]
pub struct WriterTx {
    shared: Arc<Shared>,
    /// Plain TCP's write half, for writing at once when nothing is queued ahead.
    direct: Option<Direct>,
    traffic: Arc<Traffic>,
}

impl WriterTx {
    /// Write or queue `out`; false when the socket is gone.
    pub fn send(&self, out: Out) -> bool {
        if self
            .shared
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return false;
        }
        let mut pending = self.shared.pending();
        let out = if pending.items.is_empty() && !pending.writing {
            match self.send_now(out) {
                Some(rest) => rest,
                None => return true,
            }
        } else {
            out
        };
        pending.items.push_back(out);
        drop(pending);
        self.shared.wake.notify_one();
        true
    }

    /// With nothing queued or being written: data goes straight to the socket as far as
    /// its buffer allows, and credit comes back at once, everything before it being out.
    /// Returns what is left for the writer task.
    fn send_now(&self, out: Out) -> Option<Out> {
        match out {
            Out::Release(credit, n) => {
                credit.release(n);
                None
            }
            Out::Data(bytes) => {
                let Some(direct) = &self.direct else {
                    return Some(Out::Data(bytes));
                };
                match direct.try_write(&bytes) {
                    Ok(n) => {
                        self.traffic.sent(n);
                        (n < bytes.len()).then(|| Out::Data(bytes.slice(n..)))
                    }
                    // full, or failed: the writer task waits for room or meets the error
                    Err(_) => Some(Out::Data(bytes)),
                }
            }
        }
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
    direct: Option<Direct>,
    traffic: Arc<Traffic>,
) -> (WriterTx, JoinHandle<()>) {
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(run(w, shared.clone(), traffic.clone()));
    (
        WriterTx {
            shared,
            direct,
            traffic,
        },
        task,
    )
}

async fn run<W: AsyncWrite + Unpin>(mut w: W, shared: Arc<Shared>, traffic: Arc<Traffic>) {
    let mut batch: VecDeque<Out> = VecDeque::new();
    let mut releases: Vec<(Arc<Credit>, u32)> = Vec::new();
    loop {
        {
            let mut pending = shared.pending();
            std::mem::swap(&mut pending.items, &mut batch);
            pending.writing = !batch.is_empty();
        }
        if batch.is_empty() {
            if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
                // the connection dropped its handle: anything it queued is written
                if shared.pending().items.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::socket::Socket;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A writer on the accepted end of a loopback connection, and the client's end.
    async fn writer_and_client() -> (WriterTx, JoinHandle<()>, TcpStream, Arc<Traffic>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_reader, half, direct) = server.into_halves();
        assert!(direct.is_some(), "plain TCP writes without waiting");
        let traffic = Arc::new(Traffic::default());
        let (tx, task) = spawn(half, direct, traffic.clone());
        (tx, task, client, traffic)
    }

    fn chunk(i: u32, len: usize) -> Bytes {
        let mut v = vec![0u8; len];
        v[..4].copy_from_slice(&i.to_be_bytes());
        Bytes::from(v)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_reads_slowly_still_gets_every_frame_in_order() {
        let (tx, task, mut client, _) = writer_and_client().await;
        // far more than the socket buffers hold: some writes go straight out, the rest
        // wait for the writer task, and nothing may overtake what it holds
        const N: u32 = 2000;
        const LEN: usize = 32 * 1024;
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            loop {
                // a slow reader, so the socket keeps filling and draining
                match client.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        for i in 0..N {
            assert!(tx.send(Out::Data(chunk(i, LEN))));
            if i % 8 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        let got = reading.await.unwrap();
        task.await.unwrap();
        assert_eq!(got.len(), N as usize * LEN);
        for (i, c) in got.chunks(LEN).enumerate() {
            assert_eq!(u32::from_be_bytes(c[..4].try_into().unwrap()), i as u32);
        }
    }

    #[tokio::test]
    async fn no_ack_credit_comes_back_only_once_the_deliveries_before_it_are_written() {
        let (tx, _task, mut client, traffic) = writer_and_client().await;
        let credit = Arc::new(Credit::new(1, None));
        credit.take();
        // more than the socket takes while the client is not reading
        let big = Bytes::from(vec![7u8; 16 * 1024 * 1024]);
        tx.send(Out::Data(big.clone()));
        tx.send(Out::Release(credit.clone(), 1));
        assert!(
            !credit.has_room(),
            "released before its delivery was on the socket"
        );

        let mut got = vec![0u8; big.len()];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got))
            .await
            .expect("the writer task finishes what did not fit")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !credit.has_room() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("credit comes back once the bytes are out");
        assert_eq!(traffic.octets()[1], big.len() as u64);

        // with nothing waiting, a release is immediate
        credit.take();
        tx.send(Out::Release(credit.clone(), 1));
        assert!(credit.has_room());
    }
}
