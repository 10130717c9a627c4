//! `Journal`: a queue's bookkeeping with the store, owned by its actor. It decides which
//! copies are stored (persistent messages in a durable queue; every message in a quorum
//! queue), collects this wake-up's changes (enqueue, delivered, removed) and submits them
//! as one batch. A queue without a store has a journal that records nothing. It never
//! decides what happens to a message, only what the disk must remember of it.

use std::sync::Arc;

use crate::model::message::{Message, MessageRecord};
use crate::store::{ConfirmToken, Store, StoreOp};

#[derive(Debug)]
pub struct Journal {
    store: Option<(Store, Arc<str>)>,
    /// Quorum queues keep every message, whatever its delivery mode.
    store_all: bool,
    ops: Vec<StoreOp>,
    /// Confirms of copies that are not stored, let go at `submit`: after this wake-up's
    /// deliveries went out, so a publisher that also consumes sees the delivery before
    /// the ack, as from RabbitMQ.
    confirm_after_dispatch: Vec<Arc<ConfirmToken>>,
}

impl Journal {
    pub fn new(store: Option<(Store, Arc<str>)>, store_all: bool) -> Self {
        Self {
            store,
            store_all,
            ops: Vec::new(),
            confirm_after_dispatch: Vec::new(),
        }
    }

    pub fn is_durable(&self) -> bool {
        self.store.is_some()
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref().map(|(s, _)| s)
    }

    /// Whether a copy of a message with this delivery mode lives in the store.
    pub fn stores(&self, persistent: bool) -> bool {
        self.store.is_some() && (persistent || self.store_all)
    }

    pub fn enqueue(&mut self, seq: u64, message: Arc<Message>, confirm: Option<Arc<ConfirmToken>>) {
        if let (true, Some((_, key))) = (self.stores(message.persistent), &self.store) {
            self.ops.push(StoreOp::Enqueue {
                queue: key.clone(),
                seq,
                message,
                confirm,
            });
        } else if let Some(confirm) = confirm {
            self.confirm_after_dispatch.push(confirm);
        }
    }

    /// A delivered copy will come back redelivered after a restart.
    pub fn mark_delivered(&mut self, seq: u64, persistent: bool) {
        if let (true, Some((_, key))) = (self.stores(persistent), &self.store) {
            self.ops.push(StoreOp::MarkDelivered {
                queue: key.clone(),
                seq,
            });
        }
    }

    /// A quorum queue's message was returned: its count outlives a restart.
    pub fn set_delivery_count(&mut self, seq: u64, persistent: bool, count: u32) {
        if let (true, Some((_, key))) = (self.stores(persistent), &self.store) {
            self.ops.push(StoreOp::SetDeliveryCount {
                queue: key.clone(),
                seq,
                count,
            });
        }
    }

    /// The change that takes a copy out of the store, for the caller to place (dead-
    /// lettering applies it only once the message is stored where it went).
    pub fn removal(&self, seq: u64, persistent: bool, store_id: u64) -> Option<StoreOp> {
        match (self.stores(persistent), &self.store) {
            (true, Some((_, key))) => Some(StoreOp::Remove {
                queue: key.clone(),
                seq,
                store_id,
            }),
            _ => None,
        }
    }

    /// The copy left the queue for good.
    pub fn remove(&mut self, seq: u64, persistent: bool, store_id: u64) {
        self.ops.extend(self.removal(seq, persistent, store_id));
    }

    /// Changes made elsewhere that belong in this queue's batch (its definitions going).
    pub fn push_ops(&mut self, ops: Vec<StoreOp>) {
        if self.store.is_some() {
            self.ops.extend(ops);
        }
    }

    pub fn delete_queue(&mut self) {
        if let Some((_, key)) = &self.store {
            self.ops.push(StoreOp::DeleteQueue { queue: key.clone() });
        }
    }

    /// Read stored messages back (paging a backlog in).
    pub fn read(&self, ids: &[u64]) -> Vec<Option<MessageRecord>> {
        match &self.store {
            Some((store, _)) => store.read(ids),
            None => vec![None; ids.len()],
        }
    }

    /// Submit this wake-up's changes as one batch (waits only for room in the store's queue).
    pub async fn submit(&mut self) {
        self.confirm_after_dispatch.clear();
        if let Some((store, _)) = &self.store {
            if !self.ops.is_empty() {
                store.submit(std::mem::take(&mut self.ops)).await;
            }
        }
    }
}
