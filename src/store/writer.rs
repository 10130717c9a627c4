//! The writer thread: blocks for the first batch, drains whatever else has queued, drops
//! work that cancels out (a message enqueued and removed within the same batch never touches
//! the disk), commits once, then releases the batch's confirm tokens and sync waiters.
//! Compacts when it has been idle after deletes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Backend, StoreOp};

/// Most ops folded into one commit; bounds the latency a huge backlog adds to a confirm.
const MAX_BATCH_OPS: usize = 20_000;

pub fn run(
    mut backend: impl Backend,
    mut rx: mpsc::Receiver<Vec<StoreOp>>,
    later: Arc<Mutex<Vec<StoreOp>>>,
) {
    let mut deleted_since_compact = 0usize;
    while let Some(first) = rx.blocking_recv() {
        let mut ops = std::mem::take(&mut *later.lock().unwrap_or_else(|p| p.into_inner()));
        ops.extend(first);
        while ops.len() < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(more) => ops.extend(more),
                Err(_) => break,
            }
        }
        let mut ops = cancel_out(ops);
        let shutdown = ops
            .iter()
            .position(|op| matches!(op, StoreOp::Shutdown(_)))
            .map(|i| ops.remove(i));
        deleted_since_compact += ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    StoreOp::Remove { .. }
                        | StoreOp::DeleteQueue { .. }
                        | StoreOp::DelayRemove { .. }
                        | StoreOp::DeleteDelayed { .. }
                )
            })
            .count();
        if let Err(e) = backend.apply(&ops) {
            tracing::error!("{e}; failing the batch's publishes");
            for op in &ops {
                if let StoreOp::Enqueue {
                    confirm: Some(t), ..
                }
                | StoreOp::DelayPut {
                    confirm: Some(t), ..
                } = op
                {
                    t.fail();
                }
            }
        }
        // Dropping the ops releases confirm tokens and answers Sync waiters.
        drop(ops);
        if let Some(StoreOp::Shutdown(reply)) = shutdown {
            drop(backend);
            let _ = reply.send(());
            return;
        }
        if deleted_since_compact > 100_000 && rx.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
            if rx.is_empty() {
                if let Err(e) = backend.compact() {
                    tracing::warn!("store compaction failed: {e}");
                }
                deleted_since_compact = 0;
            }
        }
    }
}

/// Drop each enqueue that a later remove in the same batch undoes, with that remove and any
/// mark of delivery between them; their confirm tokens are released all the same. A remove
/// followed by an enqueue (a message put back) is kept as it is.
fn cancel_out(ops: Vec<StoreOp>) -> Vec<StoreOp> {
    // position -> (its enqueue, the marks of delivery since) for enqueues still standing
    let mut live: HashMap<(Arc<str>, u64), (usize, Vec<usize>)> = HashMap::new();
    let mut dropped = vec![false; ops.len()];
    let mut any = false;
    for (i, op) in ops.iter().enumerate() {
        match op {
            StoreOp::Enqueue { queue, seq, .. } => {
                live.insert((queue.clone(), *seq), (i, Vec::new()));
            }
            StoreOp::MarkDelivered { queue, seq } => {
                if let Some((_, marks)) = live.get_mut(&(queue.clone(), *seq)) {
                    marks.push(i);
                }
            }
            StoreOp::Remove { queue, seq, .. } => {
                if let Some((j, marks)) = live.remove(&(queue.clone(), *seq)) {
                    for k in marks.into_iter().chain([i, j]) {
                        dropped[k] = true;
                    }
                    any = true;
                }
            }
            _ => {}
        }
    }
    if !any {
        return ops;
    }
    ops.into_iter()
        .zip(dropped)
        .filter(|(_, d)| !*d)
        .map(|(op, _)| op)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::Message;
    use bytes::Bytes;

    fn enqueue(q: &str, seq: u64) -> StoreOp {
        StoreOp::Enqueue {
            queue: q.into(),
            seq,
            message: Arc::new(Message {
                content: crate::model::message::Content::new(Bytes::new(), Bytes::new()),
                exchange: "".into(),
                routing_key: q.into(),
                persistent: true,
                priority: 0,
                expiration: None,
                store_id: seq,
            }),
            confirm: None,
        }
    }

    fn remove(q: &str, seq: u64) -> StoreOp {
        StoreOp::Remove {
            queue: q.into(),
            seq,
            store_id: seq,
        }
    }

    #[test]
    fn an_ack_in_the_same_batch_cancels_the_write() {
        let ops = cancel_out(vec![
            enqueue("a", 1),
            enqueue("a", 2),
            enqueue("b", 1),
            remove("a", 1),
        ]);
        let kept: Vec<String> = ops
            .iter()
            .map(|op| match op {
                StoreOp::Enqueue { queue, seq, .. } => format!("+{queue}{seq}"),
                StoreOp::Remove { queue, seq, .. } => format!("-{queue}{seq}"),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(kept, vec!["+a2", "+b1"]);
    }

    #[test]
    fn a_remove_of_an_earlier_batch_stays_and_a_put_back_after_a_remove_stays() {
        let ops = cancel_out(vec![remove("a", 1), enqueue("a", 2)]);
        assert_eq!(ops.len(), 2);
        let ops = cancel_out(vec![remove("a", 1), enqueue("a", 1)]);
        assert_eq!(ops.len(), 2);
    }
}
