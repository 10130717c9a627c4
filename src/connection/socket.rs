//! `Socket`: how an accepted client socket splits into the halves the connection's reader
//! (the connection task) and its writer task own.
//!
//! A plain TCP socket splits into independent halves (`TcpStream::into_split`), and its
//! write half is shared: the writer task awaits room through it, and the connection task
//! may `try_write` through it when the writer has nothing queued (see `writer`). A TLS
//! stream has one state for both directions, so its halves share it behind
//! `tokio::io::split`'s lock; that lock is held across each read and write, so the two
//! tasks wait for each other's syscalls, which plain connections need not pay; everything
//! it sends goes through the writer task. Never reads or writes anything itself.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A plain TCP write half that can be written without waiting, from any task.
pub type Direct = Arc<OwnedWriteHalf>;

pub trait Socket: Send + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// The reader's half, the writer task's half and, where the socket allows it, a
    /// handle for writing without waiting.
    fn into_halves(self) -> (Self::Reader, Self::Writer, Option<Direct>);
}

impl Socket for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = TcpWriter;
    fn into_halves(self) -> (OwnedReadHalf, TcpWriter, Option<Direct>) {
        let (r, w) = self.into_split();
        let w = Arc::new(w);
        (r, TcpWriter(w.clone()), Some(w))
    }
}

impl<S> Socket for tokio_rustls::server::TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;
    fn into_halves(self) -> (Self::Reader, Self::Writer, Option<Direct>) {
        let (r, w) = tokio::io::split(self);
        (r, w, None)
    }
}

/// The writer task's view of a shared TCP write half: the same readiness-then-`try_write`
/// loop tokio's own half runs, through `&self`, so the connection can hold the half too.
/// The socket's write side is shut down when the last holder drops it.
#[derive(Debug)]
pub struct TcpWriter(Direct);

impl AsyncWrite for TcpWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream: &TcpStream = self.0.as_ref().as_ref();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // the half shuts the write side down when its last holder drops it
        Poll::Ready(Ok(()))
    }
}
