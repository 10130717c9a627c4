//! The redb backend. Tables:
//! - `definitions`: definition key -> encoded definition (durable exchanges, queues, bindings)
//! - `messages`: store id -> encoded message, written once however many queues hold it
//! - `refs`: store id -> how many queue positions still hold the message
//! - `queue_index`: (queue key, seq) -> store id and a delivered flag, in queue order
//! - `delivery_counts`: (queue key, seq) -> how often a quorum queue's message was returned
//! - `delayed`: (vhost, due ms, store id) -> (): delayed exchanges' schedule, in due order;
//!   the message itself is in `messages`, counted in `refs` like a queue position
//!
//! Every `apply` is one write transaction committed with immediate durability.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec::{self, definition_key, encode_definition};
use super::{Backend, MessageReader, MessageRecord, Recovered, StoreError, StoreOp};
use crate::model::message::Message;

const DEFINITIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("definitions");
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const REFS: TableDefinition<u64, u32> = TableDefinition::new("refs");
const QUEUE_INDEX: TableDefinition<(&str, u64), (u64, bool)> = TableDefinition::new("queue_index");
const DELIVERY_COUNTS: TableDefinition<(&str, u64), u32> = TableDefinition::new("delivery_counts");
const DELAYED: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("delayed");

/// The database is shared with readers; the writer takes it exclusively only to compact,
/// and empties it when the backend is dropped, which closes the file (and its lock) even
/// while queues still hold readers.
type SharedDb = Arc<RwLock<Option<Database>>>;

fn closed() -> redb::Error {
    redb::Error::Io(std::io::Error::other("the store is closed"))
}

pub struct RedbBackend {
    db: SharedDb,
    path: PathBuf,
}

#[derive(Debug)]
struct RedbReader {
    db: SharedDb,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedbBackend({})", self.path.display())
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        self.db.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl MessageReader for RedbReader {
    fn read(&self, ids: &[u64]) -> Vec<Option<MessageRecord>> {
        let read = || -> Result<Vec<Option<MessageRecord>>, redb::Error> {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            let txn = guard.as_ref().ok_or_else(closed)?.begin_read()?;
            let messages = txn.open_table(MESSAGES)?;
            ids.iter()
                .map(|id| {
                    Ok(messages
                        .get(*id)?
                        .and_then(|v| codec::decode_message(v.value())))
                })
                .collect()
        };
        read().unwrap_or_else(|e| {
            tracing::error!("reading messages back from the store failed: {e}");
            vec![None; ids.len()]
        })
    }

    fn delayed(&self, vhost: &str, after: Option<(u64, u64)>, limit: usize) -> Vec<(u64, u64)> {
        let read = || -> Result<Vec<(u64, u64)>, redb::Error> {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            let txn = guard.as_ref().ok_or_else(closed)?.begin_read()?;
            let table = txn.open_table(DELAYED)?;
            let end = (vhost, u64::MAX, u64::MAX);
            let mut out = Vec::new();
            let range = match after {
                None => table.range((vhost, 0, 0)..=end)?,
                Some((due, id)) => table.range((
                    std::ops::Bound::Excluded((vhost, due, id)),
                    std::ops::Bound::Included(end),
                ))?,
            };
            for entry in range.take(limit) {
                let (k, _) = entry?;
                let (_, due, id) = k.value();
                out.push((due, id));
            }
            Ok(out)
        };
        read().unwrap_or_else(|e| {
            tracing::error!("reading delayed messages from the store failed: {e}");
            Vec::new()
        })
    }
}

impl RedbBackend {
    pub fn open(path: &Path, cache_size: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_size)
            .create(path)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                    path: path.parent().unwrap_or(path).to_path_buf(),
                },
                DatabaseError::Storage(redb::StorageError::Io(io)) => StoreError::Open {
                    path: path.to_path_buf(),
                    why: io.to_string(),
                },
                other => StoreError::Corrupt {
                    path: path.to_path_buf(),
                    why: other.to_string(),
                },
            })?;
        let backend = Self {
            db: Arc::new(RwLock::new(Some(db))),
            path: path.to_path_buf(),
        };
        // Create the tables up front so recovery of a fresh store reads empty tables.
        backend.write(|_| Ok(())).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Ok(backend)
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            why: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> Result<(), redb::Error>,
    ) -> Result<(), redb::Error> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let txn = guard.as_ref().ok_or_else(closed)?.begin_write()?;
        {
            let mut t = Tables {
                definitions: txn.open_table(DEFINITIONS)?,
                messages: txn.open_table(MESSAGES)?,
                refs: txn.open_table(REFS)?,
                index: txn.open_table(QUEUE_INDEX)?,
                counts: txn.open_table(DELIVERY_COUNTS)?,
                delayed: txn.open_table(DELAYED)?,
            };
            f(&mut t)?;
        }
        txn.commit()?;
        Ok(())
    }
}

struct Tables<'t> {
    definitions: redb::Table<'t, &'static [u8], &'static [u8]>,
    messages: redb::Table<'t, u64, &'static [u8]>,
    refs: redb::Table<'t, u64, u32>,
    index: redb::Table<'t, (&'static str, u64), (u64, bool)>,
    counts: redb::Table<'t, (&'static str, u64), u32>,
    delayed: redb::Table<'t, (&'static str, u64, u64), ()>,
}

impl Tables<'_> {
    /// One more holder of `message`; the first writes its record.
    fn hold(&mut self, message: &Message) -> Result<(), redb::Error> {
        let id = message.store_id;
        let n = self.refs.get(id)?.map(|v| v.value()).unwrap_or(0);
        if n == 0 {
            let record = codec::encode_message(
                &message.exchange,
                &message.routing_key,
                message.properties(),
                message.body(),
            );
            self.messages.insert(id, record.as_slice())?;
        }
        self.refs.insert(id, n + 1)?;
        Ok(())
    }

    fn unref(&mut self, store_id: u64) -> Result<(), redb::Error> {
        let n = self.refs.get(store_id)?.map(|v| v.value()).unwrap_or(0);
        if n <= 1 {
            self.refs.remove(store_id)?;
            self.messages.remove(store_id)?;
        } else {
            self.refs.insert(store_id, n - 1)?;
        }
        Ok(())
    }
}

impl Backend for RedbBackend {
    fn reader(&self) -> Arc<dyn MessageReader> {
        Arc::new(RedbReader {
            db: self.db.clone(),
        })
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops
            .iter()
            .all(|op| matches!(op, StoreOp::Sync(_) | StoreOp::Shutdown(_)))
        {
            return Ok(());
        }
        self.write(|t| {
            for op in ops {
                match op {
                    StoreOp::PutDefinition(d) => {
                        t.definitions.insert(
                            definition_key(d).as_slice(),
                            encode_definition(d).as_slice(),
                        )?;
                    }
                    StoreOp::DeleteDefinition(d) => {
                        t.definitions.remove(definition_key(d).as_slice())?;
                    }
                    StoreOp::Enqueue {
                        queue,
                        seq,
                        message,
                        ..
                    } => {
                        t.index
                            .insert((queue.as_ref(), *seq), (message.store_id, false))?;
                        t.hold(message)?;
                    }
                    StoreOp::DelayPut {
                        vhost,
                        due,
                        message,
                        ..
                    } => {
                        let key = (vhost.as_ref(), *due, message.store_id);
                        if t.delayed.insert(key, ())?.is_none() {
                            t.hold(message)?;
                        }
                    }
                    StoreOp::DelayRemove {
                        vhost,
                        due,
                        store_id,
                    } => {
                        if t.delayed
                            .remove((vhost.as_ref(), *due, *store_id))?
                            .is_some()
                        {
                            t.unref(*store_id)?;
                        }
                    }
                    StoreOp::DeleteDelayed { vhost } => {
                        let entries: Vec<(u64, u64)> = t
                            .delayed
                            .range((vhost.as_ref(), 0, 0)..=(vhost.as_ref(), u64::MAX, u64::MAX))?
                            .map(|e| e.map(|(k, _)| (k.value().1, k.value().2)))
                            .collect::<Result<_, _>>()?;
                        for (due, id) in entries {
                            t.delayed.remove((vhost.as_ref(), due, id))?;
                            t.unref(id)?;
                        }
                    }
                    StoreOp::MarkDelivered { queue, seq } => {
                        let found = t.index.get((queue.as_ref(), *seq))?.map(|v| v.value());
                        if let Some((id, false)) = found {
                            t.index.insert((queue.as_ref(), *seq), (id, true))?;
                        }
                    }
                    StoreOp::Remove {
                        queue,
                        seq,
                        store_id,
                    } => {
                        if t.index.remove((queue.as_ref(), *seq))?.is_some() {
                            t.unref(*store_id)?;
                            t.counts.remove((queue.as_ref(), *seq))?;
                        }
                    }
                    StoreOp::SetDeliveryCount { queue, seq, count } => {
                        if t.index.get((queue.as_ref(), *seq))?.is_some() {
                            t.counts.insert((queue.as_ref(), *seq), *count)?;
                        }
                    }
                    StoreOp::DeleteQueue { queue } => {
                        let entries: Vec<(u64, u64)> = t
                            .index
                            .range((queue.as_ref(), 0)..=(queue.as_ref(), u64::MAX))?
                            .map(|e| e.map(|(k, v)| (k.value().1, v.value().0)))
                            .collect::<Result<_, _>>()?;
                        for (seq, id) in entries {
                            t.index.remove((queue.as_ref(), seq))?;
                            t.counts.remove((queue.as_ref(), seq))?;
                            t.unref(id)?;
                        }
                    }
                    StoreOp::Sync(_) | StoreOp::Shutdown(_) => {}
                }
            }
            Ok(())
        })
        .map_err(|e| StoreError::Write(e.to_string()))
    }

    fn recover(&mut self) -> Result<Recovered, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let txn = guard
            .as_ref()
            .ok_or_else(|| self.corrupt("the store is closed"))?
            .begin_read()
            .map_err(|e| self.corrupt(e))?;
        let mut out = Recovered::default();
        let defs = txn.open_table(DEFINITIONS).map_err(|e| self.corrupt(e))?;
        for entry in defs.iter().map_err(|e| self.corrupt(e))? {
            let (_, v) = entry.map_err(|e| self.corrupt(e))?;
            let d = codec::decode_definition(v.value())
                .ok_or_else(|| self.corrupt("undecodable definition record"))?;
            out.definitions.push(d);
        }
        let index = txn.open_table(QUEUE_INDEX).map_err(|e| self.corrupt(e))?;
        let mut queues: HashMap<String, Vec<(u64, u64, bool)>> = HashMap::new();
        for entry in index.iter().map_err(|e| self.corrupt(e))? {
            let (k, v) = entry.map_err(|e| self.corrupt(e))?;
            let (queue, seq) = k.value();
            let (id, delivered) = v.value();
            queues
                .entry(queue.to_owned())
                .or_default()
                .push((seq, id, delivered));
        }
        out.queues = queues;
        let counts = txn
            .open_table(DELIVERY_COUNTS)
            .map_err(|e| self.corrupt(e))?;
        for entry in counts.iter().map_err(|e| self.corrupt(e))? {
            let (k, v) = entry.map_err(|e| self.corrupt(e))?;
            let (queue, seq) = k.value();
            out.delivery_counts
                .entry(queue.to_owned())
                .or_default()
                .insert(seq, v.value());
        }
        let messages = txn.open_table(MESSAGES).map_err(|e| self.corrupt(e))?;
        if let Some((k, _)) = messages.last().map_err(|e| self.corrupt(e))? {
            out.max_store_id = k.value();
        }
        Ok(out)
    }

    fn compact(&mut self) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(db) => db
                .compact()
                .map(|_| ())
                .map_err(|e| StoreError::Write(e.to_string())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::Message;
    use crate::store::Definition;
    use amq_protocol::types::FieldTable;
    use bytes::Bytes;
    use std::sync::Arc;

    fn message(id: u64, body: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            content: crate::model::message::Content::new(
                Bytes::from_static(&[0, 0]),
                Bytes::from_static(body),
            ),
            exchange: "ex".into(),
            routing_key: "rk".into(),
            persistent: true,
            priority: 0,
            expiration: None,
            store_id: id,
        })
    }

    fn enqueue(q: &str, seq: u64, m: &Arc<Message>) -> StoreOp {
        StoreOp::Enqueue {
            queue: q.into(),
            seq,
            message: m.clone(),
            confirm: None,
        }
    }

    #[test]
    fn a_message_in_two_queues_is_stored_once_and_freed_by_its_last_ack() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        let mut b = RedbBackend::open(&path, 1 << 20).unwrap();
        let m = message(7, b"order");
        b.apply(&[enqueue("a", 1, &m), enqueue("b", 1, &m)])
            .unwrap();
        let r = b.recover().unwrap();
        assert_eq!(b.reader().read(&[7]).iter().flatten().count(), 1);
        assert_eq!(r.queues["a"], vec![(1, 7, false)]);
        b.apply(&[
            StoreOp::MarkDelivered {
                queue: "b".into(),
                seq: 1,
            },
            StoreOp::Remove {
                queue: "a".into(),
                seq: 1,
                store_id: 7,
            },
        ])
        .unwrap();
        let r = b.recover().unwrap();
        assert_eq!(r.queues["b"], vec![(1, 7, true)]);
        assert!(!r.queues.contains_key("a"));
        b.apply(&[StoreOp::Remove {
            queue: "b".into(),
            seq: 1,
            store_id: 7,
        }])
        .unwrap();
        let r = b.recover().unwrap();
        assert!(b.reader().read(&[7])[0].is_none() && r.queues.is_empty());
    }

    #[test]
    fn a_delayed_message_is_paged_in_due_order_and_shares_its_record_with_its_queue() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = RedbBackend::open(&dir.path().join("w.redb"), 1 << 20).unwrap();
        let put = |due, m: &Arc<Message>| StoreOp::DelayPut {
            vhost: "/".into(),
            due,
            message: m.clone(),
            confirm: None,
        };
        let (early, late, other) = (message(1, b"early"), message(2, b"late"), message(3, b"x"));
        b.apply(&[put(200, &late), put(100, &early)]).unwrap();
        b.apply(&[StoreOp::DelayPut {
            vhost: "shop".into(),
            due: 50,
            message: other,
            confirm: None,
        }])
        .unwrap();
        let r = b.reader();
        assert_eq!(r.delayed("/", None, 10), vec![(100, 1), (200, 2)]);
        assert_eq!(r.delayed("/", Some((100, 1)), 10), vec![(200, 2)]);
        assert_eq!(r.delayed("/", None, 1), vec![(100, 1)]);
        // due: routed to a durable queue, then out of the schedule; the record stays
        b.apply(&[
            enqueue("q", 1, &early),
            StoreOp::DelayRemove {
                vhost: "/".into(),
                due: 100,
                store_id: 1,
            },
        ])
        .unwrap();
        assert_eq!(r.delayed("/", None, 10), vec![(200, 2)]);
        assert!(r.read(&[1])[0].is_some());
        assert_eq!(b.recover().unwrap().max_store_id, 3);
        b.apply(&[StoreOp::DeleteDelayed { vhost: "/".into() }])
            .unwrap();
        assert!(r.delayed("/", None, 10).is_empty());
        assert!(r.read(&[2])[0].is_none());
        assert_eq!(r.delayed("shop", None, 10), vec![(50, 3)]);
    }

    #[test]
    fn definitions_and_queues_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        {
            let mut b = RedbBackend::open(&path, 1 << 20).unwrap();
            let q = Definition::Queue {
                vhost: "/".into(),
                name: "orders".into(),
                auto_delete: false,
                arguments: FieldTable::default(),
            };
            b.apply(&[
                StoreOp::PutDefinition(q),
                enqueue("/\0orders", 3, &message(1, b"x")),
            ])
            .unwrap();
        }
        let mut b = RedbBackend::open(&path, 1 << 20).unwrap();
        let r = b.recover().unwrap();
        assert_eq!(r.definitions.len(), 1);
        assert_eq!(r.max_store_id, 1);
        b.apply(&[StoreOp::DeleteQueue {
            queue: "/\0orders".into(),
        }])
        .unwrap();
        assert!(b.reader().read(&[1])[0].is_none());
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        let _first = RedbBackend::open(&path, 1 << 20).unwrap();
        assert!(matches!(
            RedbBackend::open(&path, 1 << 20),
            Err(StoreError::Locked { .. })
        ));
    }

    #[test]
    fn a_garbage_file_is_reported_as_unreadable_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        std::fs::write(&path, vec![0xAB; 8192]).unwrap();
        let err = RedbBackend::open(&path, 1 << 20).expect_err("garbage must not open");
        assert!(err.to_string().contains("w.redb"), "{err}");
    }
}
