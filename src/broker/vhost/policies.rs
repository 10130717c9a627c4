//! A `VHost`'s policies and operator policies: set, cleared, listed, stored and restored.
//! A change re-matches every queue and exchange while the policy table is locked (so a
//! queue or exchange declared meanwhile sees either the old table and is re-matched, or
//! the new one), then tells each queue actor what applies to it, after the lock is gone.
//! Called by the management API, definitions import and start-up; never by a queue.

use std::sync::Arc;

use serde_json::Value;

use super::VHost;
use crate::broker::policy::{Policies, Policy, PolicyKind, Target};
use crate::broker::queue::{PolicyChange, QueueArgs, QueueCmd, QueueHandle};
use crate::store::codec::Definition;
use crate::store::StoreOp;

/// What a queue is, for matching.
pub(super) fn queue_target(args: &QueueArgs) -> Target {
    if args.is_quorum() {
        Target::QuorumQueue
    } else {
        Target::ClassicQueue
    }
}

impl VHost {
    pub(super) fn policy_table(&self) -> std::sync::RwLockReadGuard<'_, Policies> {
        self.policies.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Lowest priority first, as RabbitMQ lists them.
    pub fn policies(&self, kind: PolicyKind) -> Vec<Arc<Policy>> {
        self.policy_table().list(kind)
    }

    pub fn policy(&self, kind: PolicyKind, name: &str) -> Option<Arc<Policy>> {
        self.policy_table().get(kind, name)
    }

    /// Add or replace a policy; it applies to existing queues and exchanges at once and is
    /// stored before this returns. True when it is new.
    pub async fn set_policy(&self, kind: PolicyKind, policy: Policy) -> bool {
        let stored = policy_definition(kind, &policy);
        let (created, changes) = {
            let mut table = self.policies.write().unwrap_or_else(|p| p.into_inner());
            let created = table.set(kind, policy);
            (created, self.rematch(&table))
        };
        self.persist(vec![StoreOp::PutDefinition(stored)]).await;
        tell_queues(changes).await;
        created
    }

    /// Remove a policy; false when there was none by that name.
    pub async fn clear_policy(&self, kind: PolicyKind, name: &str) -> bool {
        let (removed, changes) = {
            let mut table = self.policies.write().unwrap_or_else(|p| p.into_inner());
            let removed = table.remove(kind, name);
            (removed, self.rematch(&table))
        };
        let Some(removed) = removed else {
            return false;
        };
        self.persist(vec![StoreOp::DeleteDefinition(policy_definition(
            kind, &removed,
        ))])
        .await;
        tell_queues(changes).await;
        true
    }

    /// Every policy's removal from the store (the vhost is being deleted).
    pub fn policy_removals(&self) -> Vec<StoreOp> {
        let table = self.policy_table();
        [PolicyKind::Policy, PolicyKind::Operator]
            .into_iter()
            .flat_map(|kind| {
                table
                    .list(kind)
                    .into_iter()
                    .map(move |p| StoreOp::DeleteDefinition(policy_definition(kind, &p)))
            })
            .collect()
    }

    /// Exchanges take their new policy here (they are data); queues are returned with
    /// theirs, their publish-path flags already set, for `tell_queues`.
    fn rematch(&self, table: &Policies) -> Vec<(Arc<QueueHandle>, QueueCmd)> {
        for x in self.exchanges.iter() {
            if !x.name.is_empty() {
                x.set_policy(table.applied(&x.name, Target::Exchange));
            }
        }
        self.queues
            .iter()
            .map(|q| {
                let applied = table.applied(&q.name, queue_target(&q.args));
                let args = q.args_under(&applied);
                q.set_flags(&args);
                let version = table.version();
                (
                    q.clone(),
                    QueueCmd::Policy(Box::new(PolicyChange {
                        version,
                        applied,
                        args,
                    })),
                )
            })
            .collect()
    }

    /// At start, before exchanges and queues are rebuilt: the stored policies of this vhost.
    /// One that no longer passes the checks is left out and named in the log.
    pub(super) fn restore_policies(&self, definitions: &[Definition]) {
        let mut table = self.policies.write().unwrap_or_else(|p| p.into_inner());
        for d in definitions {
            let Definition::Policy {
                vhost,
                name,
                operator,
                value,
            } = d
            else {
                continue;
            };
            if vhost != &self.name {
                continue;
            }
            let kind = if *operator {
                PolicyKind::Operator
            } else {
                PolicyKind::Policy
            };
            let parsed = match serde_json::from_str::<Value>(value) {
                Ok(Value::Object(body)) => {
                    Policy::parse(kind, vhost, name, &body).map_err(|e| e.reason())
                }
                _ => Err("not a JSON object".to_owned()),
            };
            match parsed {
                Ok(p) => {
                    table.set(kind, p);
                }
                Err(why) => {
                    tracing::warn!(vhost = %vhost, policy = %name, "stored policy left out: {why}")
                }
            }
        }
    }
}

fn policy_definition(kind: PolicyKind, policy: &Policy) -> Definition {
    Definition::Policy {
        vhost: policy.vhost.clone(),
        name: policy.name.clone(),
        operator: kind == PolicyKind::Operator,
        value: Value::Object(policy.value_json()).to_string(),
    }
}

/// Each queue's actor hears of its policies; one that changed nothing ignores it.
async fn tell_queues(changes: Vec<(Arc<QueueHandle>, QueueCmd)>) {
    for (q, cmd) in changes {
        q.send(cmd).await;
    }
}
