//! Durability. The ONLY place that commits or fsyncs (design.md §3).
//!
//! `Store` is a cheap handle: queue actors and vhosts send it batches of `StoreOp`s over a
//! bounded channel (a full channel parks them, which in turn parks publishers), and one writer
//! thread applies whatever has queued up in one transaction: group commit whose batch grows
//! with load, no timer, no per-message fsync. `ConfirmToken`s ride along with enqueues and
//! fire a publisher confirm when the last copy of a message is durable. The `Backend` trait
//! is what a storage engine implements; redb is the one we ship.

pub mod codec;
pub mod redb_store;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::model::message::Message;
pub use codec::{Definition, MessageRecord};

/// Batches waiting for the writer. What fills it: queue actors and definition changes;
/// when full, senders wait (and so do the publishers behind them).
pub const STORE_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path} is in use by another Warren (the database is locked)")]
    Locked { path: PathBuf },
    #[error("cannot open the store {path}: {why}")]
    Open { path: PathBuf, why: String },
    #[error("the store {path} is unreadable: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("store write failed: {0}")]
    Write(String),
}

/// One change to durable state.
#[derive(Debug)]
pub enum StoreOp {
    PutDefinition(Definition),
    DeleteDefinition(Definition),
    /// A persistent message enters a durable queue at position `seq`.
    Enqueue {
        queue: Arc<str>,
        seq: u64,
        message: Arc<Message>,
        confirm: Option<Arc<ConfirmToken>>,
    },
    /// The message at `seq` was handed to a consumer (it comes back redelivered).
    MarkDelivered {
        queue: Arc<str>,
        seq: u64,
    },
    /// The message at `seq` left the queue for good (acked, expired, purged).
    Remove {
        queue: Arc<str>,
        seq: u64,
        store_id: u64,
    },
    /// A quorum queue's message at `seq` was returned `count` times (its delivery count
    /// survives a restart, as in RabbitMQ).
    SetDeliveryCount {
        queue: Arc<str>,
        seq: u64,
        count: u32,
    },
    /// Every message of a deleted queue.
    DeleteQueue {
        queue: Arc<str>,
    },
    /// A message held by an `x-delayed-message` exchange of `vhost` until `due` (wall-clock
    /// milliseconds), whatever its delivery mode: delayed messages survive a restart.
    DelayPut {
        vhost: Arc<str>,
        due: u64,
        message: Arc<Message>,
        confirm: Option<Arc<ConfirmToken>>,
    },
    /// A delayed message left its exchange (routed, or its vhost went).
    DelayRemove {
        vhost: Arc<str>,
        due: u64,
        store_id: u64,
    },
    /// Every delayed message of a deleted vhost.
    DeleteDelayed {
        vhost: Arc<str>,
    },
    /// Answered once everything sent before it is committed.
    Sync(oneshot::Sender<()>),
    /// Commit what came before, close the database (releasing its lock) and answer.
    Shutdown(oneshot::Sender<()>),
}

/// What recovery found. Message bodies are not read here: queues load them as they need
/// them, so recovery time and memory do not grow with the backlog's bytes.
#[derive(Debug, Default)]
pub struct Recovered {
    pub definitions: Vec<Definition>,
    /// Per queue key: (seq, store id, delivered before), in seq order.
    pub queues: HashMap<String, Vec<(u64, u64, bool)>>,
    /// Per queue key: seq -> delivery count, for quorum queues' returned messages.
    pub delivery_counts: HashMap<String, HashMap<u64, u32>>,
    pub max_store_id: u64,
}

/// Reads stored messages back, from any thread, concurrently with the writer.
pub trait MessageReader: Send + Sync + std::fmt::Debug {
    /// The records for `ids`, in order; None where a message is not (or no longer) stored.
    fn read(&self, ids: &[u64]) -> Vec<Option<MessageRecord>>;
    /// Up to `limit` of `vhost`'s delayed messages after `after`, as (due, store id) in
    /// due order: a delayed exchange's schedule is paged in, never held whole in memory.
    fn delayed(&self, vhost: &str, after: Option<(u64, u64)>, limit: usize) -> Vec<(u64, u64)>;
}

/// A storage engine: applies batches atomically and reads everything back at start.
pub trait Backend: Send + 'static {
    fn reader(&self) -> Arc<dyn MessageReader>;
    /// Apply `ops` (already stripped of work that cancels out) in one durable commit.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;
    fn recover(&mut self) -> Result<Recovered, StoreError>;
    /// Give back space freed by deletes, if the engine can (called when idle).
    fn compact(&mut self) -> Result<(), StoreError>;
}

/// Where publisher confirms go: the connection implements it (the store never knows what
/// a connection is). Called from whichever thread lets go of the last copy; must not block.
pub trait ConfirmSink: Send + Sync + std::fmt::Debug {
    fn confirmed(&self, channel_id: u16, epoch: u64, seq: u64, ack: bool);
}

/// Who to tell when a publish is durable (or failed).
#[derive(Debug)]
pub enum Completion {
    /// A publisher-confirm sequence number on a channel.
    Confirm {
        sink: Arc<dyn ConfirmSink>,
        channel_id: u16,
        epoch: u64,
        seq: u64,
    },
    /// tx.commit waiting for its publishes.
    Notify(oneshot::Sender<bool>),
    /// Changes that may only be made once this publish is durable: a dead-lettered message
    /// leaves its old queue only after every stored copy in its new queues is committed,
    /// so a crash in between keeps it twice rather than never (at-least-once).
    Then(Store, Vec<StoreOp>),
}

/// Shared by every durable copy of one publish; fires its completion when the last holder
/// drops it: the publishing connection after routing, and the writer after each commit.
/// A message dropped unstored (its queue deleted meanwhile) still completes, as in RabbitMQ.
#[derive(Debug)]
pub struct ConfirmToken {
    completion: Mutex<Option<Completion>>,
    failed: AtomicBool,
}

impl ConfirmToken {
    pub fn new(completion: Completion) -> Arc<Self> {
        Arc::new(Self {
            completion: Mutex::new(Some(completion)),
            failed: AtomicBool::new(false),
        })
    }

    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// When nobody else holds the token (no copy went to the store), take its completion
    /// and outcome back to handle inline instead of through an event; otherwise let go of
    /// our share.
    pub fn try_disarm(token: Arc<Self>) -> Option<(Completion, bool)> {
        let token = Arc::try_unwrap(token).ok()?;
        let ok = !token.failed.load(Ordering::Acquire);
        let completion = token.completion.lock().ok()?.take();
        completion.map(|c| (c, ok))
    }
}

impl Drop for ConfirmToken {
    fn drop(&mut self) {
        let ok = !self.failed.load(Ordering::Acquire);
        let completion = self.completion.get_mut().map(Option::take).unwrap_or(None);
        match completion {
            Some(Completion::Confirm {
                sink,
                channel_id,
                epoch,
                seq,
            }) => sink.confirmed(channel_id, epoch, seq, ok),
            Some(Completion::Notify(tx)) => {
                let _ = tx.send(ok);
            }
            // A failed write keeps the old copy where it was.
            Some(Completion::Then(store, ops)) if ok => store.submit_later(ops),
            Some(Completion::Then(..)) | None => {}
        }
    }
}

/// Handle to the writer thread, and to reading messages back.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Vec<StoreOp>>,
    reader: Arc<dyn MessageReader>,
    /// Ops handed over where nobody may wait (a completion firing on the writer thread
    /// itself, or in a task that must not block): the writer takes them with its next batch.
    later: Arc<Mutex<Vec<StoreOp>>>,
}

impl Store {
    /// Open the redb store under `data_dir` and start its writer thread.
    pub fn open(
        data_dir: &std::path::Path,
        cache_size: usize,
    ) -> Result<(Store, Recovered), StoreError> {
        let mut backend = redb_store::RedbBackend::open(&data_dir.join("warren.redb"), cache_size)?;
        let recovered = backend.recover()?;
        Ok((Self::start(backend), recovered))
    }

    pub fn start(backend: impl Backend) -> Store {
        let reader = backend.reader();
        let (tx, rx) = mpsc::channel(STORE_QUEUE);
        let later = Arc::new(Mutex::new(Vec::new()));
        let writer_later = later.clone();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || writer::run(backend, rx, writer_later))
            .expect("spawn store writer thread");
        Store { tx, reader, later }
    }

    /// Queue `ops` for the next commit without waiting: they join whatever batch the writer
    /// takes next. The empty wake-up batch may find the channel full, which means the
    /// writer is busy and will look at `later` anyway.
    pub fn submit_later(&self, ops: Vec<StoreOp>) {
        if ops.is_empty() {
            return;
        }
        self.later
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ops);
        let _ = self.tx.try_send(Vec::new());
    }

    /// Read stored messages back (a queue paging its backlog in).
    pub fn read(&self, ids: &[u64]) -> Vec<Option<MessageRecord>> {
        self.reader.read(ids)
    }

    /// The next page of a vhost's delayed messages (see `MessageReader::delayed`).
    pub fn delayed(&self, vhost: &str, after: Option<(u64, u64)>, limit: usize) -> Vec<(u64, u64)> {
        self.reader.delayed(vhost, after, limit)
    }

    /// Queue `ops` for the next commit (waits only for room in the writer's queue).
    pub async fn submit(&self, ops: Vec<StoreOp>) {
        if !ops.is_empty() {
            let _ = self.tx.send(ops).await;
        }
    }

    /// Commit everything queued so far and close the database. Later submissions are
    /// dropped (their publishes are nacked by the token's failure path never firing ack).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(vec![StoreOp::Shutdown(tx)]).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Queue `ops` and wait until they are committed.
    pub async fn commit(&self, mut ops: Vec<StoreOp>) {
        let (tx, rx) = oneshot::channel();
        ops.push(StoreOp::Sync(tx));
        if self.tx.send(ops).await.is_ok() {
            let _ = rx.await;
        }
    }
}
