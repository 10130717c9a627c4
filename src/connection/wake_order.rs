//! How many connections their socket has woken that the runtime has not polled yet: what a
//! publishing connection looks at before it routes, so that the connection whose data
//! arrived first routes first (`handlers::publish::keep_publish_order`).
//!
//! tokio runs the task it woke last ahead of the ones woken before it (its LIFO slot). When
//! one poll of the socket driver finds data on two connections, the one woken second runs
//! first, and its publish, its queue and that queue's delivery all run before the other
//! connection reads at all: Celery's task overtook the revoke broadcast published just before
//! it from another connection. Each connection's reader is wrapped so that a wake-up by its
//! socket is counted until the connection is next polled.
//!
//! Only the wrapped reader writes the count; it never delays a read.

use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, ReadBuf};

/// Connections woken by their socket and not polled since. Signed: a wake-up racing the
/// connection's end may take it below zero for an instant.
static WOKEN_UNPOLLED: AtomicIsize = AtomicIsize::new(0);

/// Some other connection's socket has woken it and it has not run since.
pub fn others_woken() -> bool {
    WOKEN_UNPOLLED.load(Ordering::Relaxed) > 0
}

const IDLE: u8 = 0;
const WOKEN: u8 = 1;
const CLOSED: u8 = 2;

struct ReadWake {
    state: AtomicU8,
    /// The connection task's own waker, as of its last poll.
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self
            .state
            .compare_exchange(IDLE, WOKEN, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            WOKEN_UNPOLLED.fetch_add(1, Ordering::Relaxed);
        }
        self.task.wake();
    }
}

/// A connection's reader, counted in `WOKEN_UNPOLLED` while its socket's wake-up waits.
pub struct WakeTracked<R> {
    inner: R,
    wake: Arc<ReadWake>,
    /// `wake` as a waker, made once: the socket keeps it while it waits.
    waker: Waker,
}

impl<R> WakeTracked<R> {
    pub fn new(inner: R) -> Self {
        let wake = Arc::new(ReadWake {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(wake.clone());
        WakeTracked { inner, wake, waker }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WakeTracked<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        this.wake.task.register(cx.waker());
        if this
            .wake
            .state
            .compare_exchange(WOKEN, IDLE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            WOKEN_UNPOLLED.fetch_sub(1, Ordering::Relaxed);
        }
        let mut tracked = Context::from_waker(&this.waker);
        Pin::new(&mut this.inner).poll_read(&mut tracked, buf)
    }
}

impl<R> Drop for WakeTracked<R> {
    fn drop(&mut self) {
        // a wake-up after this is not counted
        if self.wake.state.swap(CLOSED, Ordering::AcqRel) == WOKEN {
            WOKEN_UNPOLLED.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn state<R>(reader: &WakeTracked<R>) -> u8 {
        reader.wake.state.load(Ordering::Acquire)
    }

    fn poll_once<R: AsyncRead + Unpin>(
        reader: &mut WakeTracked<R>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<()>> {
        let mut read_buf = ReadBuf::new(buf);
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(reader).poll_read(&mut cx, &mut read_buf)
    }

    // Other tests' connections move the global count meanwhile, so this looks at the
    // reader's own part of it.
    #[tokio::test]
    async fn a_socket_wake_up_is_counted_until_the_connection_reads_or_ends() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = WakeTracked::new(server);
        let mut buf = [0u8; 8];
        // nothing to read yet: the reader waits with the tracking waker
        assert!(poll_once(&mut reader, &mut buf).is_pending());
        assert_eq!(state(&reader), IDLE);
        client.write_all(b"x").await.unwrap();
        assert_eq!(state(&reader), WOKEN);
        assert!(others_woken());
        assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
        assert_eq!(state(&reader), IDLE);
        // woken again, then gone before it read: ends closed, and later wake-ups not counted
        assert!(poll_once(&mut reader, &mut buf).is_pending());
        client.write_all(b"y").await.unwrap();
        assert_eq!(state(&reader), WOKEN);
        let wake = reader.wake.clone();
        drop(reader);
        assert_eq!(wake.state.load(Ordering::Acquire), CLOSED);
        wake.wake_by_ref();
        assert_eq!(wake.state.load(Ordering::Acquire), CLOSED);
    }
}
