//! `Socket`: how an accepted client socket splits into the halves the connection's reader
//! (the connection task) and its writer task own.
//!
//! A plain TCP socket splits into independent halves (`TcpStream::into_split`). A TLS
//! stream has one state for both directions, so its halves share it behind
//! `tokio::io::split`'s lock; that lock is held across each read and write, so the two
//! tasks wait for each other's syscalls, which plain connections need not pay. Never reads
//! or writes anything itself.

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub trait Socket: Send + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: AsyncWrite + Unpin + Send + 'static;
    fn into_halves(self) -> (Self::Reader, Self::Writer);
}

impl Socket for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

impl<S> Socket for tokio_rustls::server::TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}
