//! The writer task: the only code that writes to a client socket. The connection task sends
//! it already-encoded frames; it writes everything that has queued up, flushes once per batch
//! and only then gives back the no-ack credit of the deliveries it wrote (so a client that
//! stops reading stops receiving, instead of the broker buffering for it).

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::broker::consumer::Credit;

#[derive(Debug)]
pub enum Out {
    Data(Bytes),
    /// Give back credit once everything before this item is on the socket.
    Release(Arc<Credit>, u32),
}

/// Unbounded, because what fills it is bounded elsewhere: replies to the client's own
/// requests, and deliveries limited by prefetch or the no-ack window released here.
pub type WriterTx = mpsc::UnboundedSender<Out>;

pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(w: W) -> (WriterTx, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(run(w, rx)))
}

/// No buffer of its own: the connection already hands over one buffer per wake-up, and an
/// idle connection should hold no memory here.
async fn run<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut releases: Vec<(Arc<Credit>, u32)> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut item = Some(first);
        let mut failed = false;
        while let Some(out) = item.take() {
            match out {
                Out::Data(bytes) => {
                    if w.write_all(&bytes).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                Out::Release(credit, n) => releases.push((credit, n)),
            }
            item = rx.try_recv().ok();
        }
        if failed || w.flush().await.is_err() {
            break;
        }
        for (credit, n) in releases.drain(..) {
            credit.release(n);
        }
    }
    let _ = w.shutdown().await;
}
