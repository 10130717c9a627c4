//! Queue declaration, equivalence checks and deletion for a `VHost`. A queue's actor calls
//! `remove_queue` as it goes; everything else here is called by channels and the
//! management API. Never awaits a queue while holding a table entry.

use std::sync::Arc;

use super::{same, QueueSpec, VHost};
use crate::broker::exchange::Destination;
use crate::broker::queue::{self, args, QueueArgs, QueueCmd, QueueHandle, QueueInit, QueueStats};
use crate::protocol::AmqpError;
use crate::store::codec::{queue_key, Definition};
use crate::store::StoreOp;

impl VHost {
    /// Declare (or find) a queue. Returns the handle and whether it was created now.
    pub async fn declare_queue(
        &self,
        spec: QueueSpec,
        connection_id: u64,
    ) -> Result<(Arc<QueueHandle>, bool), AmqpError> {
        let (q, created) = self.declare_queue_now(spec, connection_id)?;
        self.metrics.queues_declared.inc();
        if created {
            self.metrics.queues_created.inc();
        }
        if created && q.store_key.is_some() {
            self.persist(vec![StoreOp::PutDefinition(self.queue_definition(&q))])
                .await;
        }
        if !created && q.expires() {
            // a redeclare is a use: the x-expires period starts again
            q.send(QueueCmd::Touch).await;
        }
        Ok((q, created))
    }

    fn queue_definition(&self, q: &QueueHandle) -> Definition {
        Definition::Queue {
            vhost: self.name.clone(),
            name: q.name.to_string(),
            auto_delete: q.auto_delete,
            arguments: q.arguments.clone(),
        }
    }

    fn declare_queue_now(
        &self,
        mut spec: QueueSpec,
        connection_id: u64,
    ) -> Result<(Arc<QueueHandle>, bool), AmqpError> {
        // RabbitMQ: an exclusive queue is never durable, whatever the declaration says
        spec.durable &= !spec.exclusive;
        if let Some(q) = self.queues.get(&spec.name).map(|q| q.clone()) {
            self.check_queue_equivalent(&q, &spec, connection_id)?;
            return Ok((q, false));
        }
        // RabbitMQ's order: the vhost's queue limit, then the arguments, then the type's rules
        if let Some(max) = self.limit("max-queues", self.max_queues as u64) {
            if self.queues.len() as u64 >= max {
                return Err(AmqpError::precondition_failed(format!(
                    "cannot declare queue '{}': queue limit in vhost '{}' ({max}) is reached",
                    spec.name, self.name
                )));
            }
        }
        let parsed = QueueArgs::parse(&spec.arguments, &spec.name, &self.name)?;
        if parsed.is_quorum() {
            args::check_quorum_properties(
                spec.durable,
                spec.exclusive,
                spec.auto_delete,
                &spec.name,
                &self.name,
            )?;
        }
        let mut created = false;
        let target = super::policies::queue_target(&parsed);
        let policies = self.policy_table();
        let q = self
            .queues
            .entry(spec.name.clone())
            .or_insert_with(|| {
                created = true;
                // Exclusive queues die with their connection, so they are never stored.
                let store = match (&self.store, spec.durable && !spec.exclusive) {
                    (Some(store), true) => {
                        Some((store.clone(), queue_key(&self.name, &spec.name).into()))
                    }
                    _ => None,
                };
                queue::spawn(
                    QueueInit {
                        name: spec.name.as_str().into(),
                        durable: spec.durable,
                        auto_delete: spec.auto_delete,
                        exclusive_owner: spec.exclusive.then_some(connection_id),
                        arguments: spec.arguments.clone(),
                        args: parsed,
                        store,
                        recovered: Vec::new(),
                        recovered_counts: Default::default(),
                        ram_limit: self.queue_ram_limit,
                        metrics: self.metrics.clone(),
                        policy: policies.applied(&spec.name, target),
                        policy_version: policies.version(),
                        clock: self.clock.clone(),
                    },
                    self.me.clone(),
                )
            })
            .clone();
        drop(policies);
        if !created {
            self.check_queue_equivalent(&q, &spec, connection_id)?;
        }
        Ok((q, created))
    }

    /// A redeclaration matches: first the owner, strictly (a non-exclusive declaration of an
    /// exclusive queue is locked out even on the owning connection, and the other way round),
    /// then durable, auto_delete and the arguments, in RabbitMQ's order.
    fn check_queue_equivalent(
        &self,
        q: &QueueHandle,
        spec: &QueueSpec,
        connection_id: u64,
    ) -> Result<(), AmqpError> {
        if q.exclusive_owner != spec.exclusive.then_some(connection_id) {
            return Err(self.locked(q));
        }
        let inequivalent = |arg: &str, received: bool, current: bool| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received '{}' but current is '{}'",
                q.name,
                self.name,
                same(received),
                same(current)
            ))
        };
        if q.durable != spec.durable {
            return Err(inequivalent("durable", spec.durable, q.durable));
        }
        if q.auto_delete != spec.auto_delete {
            return Err(inequivalent("auto_delete", spec.auto_delete, q.auto_delete));
        }
        args::check_equivalent(&q.arguments, &spec.arguments, &q.name, &self.name)
    }

    pub async fn queue_stats(&self, q: &QueueHandle) -> QueueStats {
        q.ask(|reply| QueueCmd::Stats { reply })
            .await
            .unwrap_or_default()
    }

    /// queue.delete: the actor checks if-unused/if-empty, tells its consumers, leaves the
    /// vhost and the store, and stops.
    pub async fn delete_queue(
        &self,
        q: &Arc<QueueHandle>,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, AmqpError> {
        q.ask(|reply| QueueCmd::Delete {
            if_unused,
            if_empty,
            reply,
        })
        .await
        .unwrap_or(Ok(0))
    }

    /// Called by a queue's actor as it goes: take it out of the tables (only this very
    /// queue, not a namesake declared since) and its bindings with it. Returns the store
    /// changes for its durable definitions, which the actor commits with its own.
    pub fn remove_queue(&self, q: &Arc<QueueHandle>) -> Vec<StoreOp> {
        let mut ops = Vec::new();
        if self
            .queues
            .remove_if(q.name.as_ref(), |_, v| Arc::ptr_eq(v, q))
            .is_none()
        {
            return ops;
        }
        self.metrics.queues_deleted.inc();
        if q.store_key.is_some() {
            ops.push(StoreOp::DeleteDefinition(self.queue_definition(q)));
        }
        self.remove_destination(&Destination::Queue(q.name.clone()), &mut ops);
        ops
    }
}
