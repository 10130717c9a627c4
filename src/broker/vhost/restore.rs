//! Rebuilding a `VHost` from the store at start: policies, exchanges, queues with their
//! recovered positions, then bindings. Called once per vhost by `BrokerState::new`; re-stores nothing.

use std::sync::Arc;

use super::VHost;
use crate::broker::exchange::{declared_type, Exchange};
use crate::broker::policy::Target;
use crate::broker::queue::{self, QueueArgs, QueueInit};
use crate::store::codec::{queue_key, Definition};

impl VHost {
    /// Rebuild this vhost from the store at start: exchanges, queues with their messages
    /// (in order; delivered ones marked redelivered), then bindings. Nothing is re-stored.
    pub fn restore(
        &self,
        definitions: &[Definition],
        positions: &mut std::collections::HashMap<String, Vec<(u64, u64, bool)>>,
        delivery_counts: &mut std::collections::HashMap<
            String,
            std::collections::HashMap<u64, u32>,
        >,
    ) -> usize {
        let mut restored = 0;
        self.restore_policies(definitions);
        let policies = self.policy_table();
        for d in definitions {
            if let Definition::Exchange {
                vhost,
                name,
                kind,
                auto_delete,
                internal,
                arguments,
            } = d
            {
                let Ok((kind, delayed)) = declared_type(kind, arguments) else {
                    continue;
                };
                if vhost != &self.name {
                    continue;
                }
                let mut x =
                    Exchange::new(name, kind, true, *auto_delete, *internal, arguments.clone());
                if delayed {
                    x = x.delaying();
                    self.any_delayed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                self.exchanges.insert(name.clone(), Arc::new(x));
            }
        }
        for d in definitions {
            if let Definition::Queue {
                vhost,
                name,
                auto_delete,
                arguments,
            } = d
            {
                if vhost != &self.name {
                    continue;
                }
                let key = queue_key(&self.name, name);
                let recovered = positions.remove(&key).unwrap_or_default();
                let recovered_counts = delivery_counts.remove(&key).unwrap_or_default();
                restored += recovered.len();
                let args = QueueArgs::read(arguments);
                let target = super::policies::queue_target(&args);
                let handle = queue::spawn(
                    QueueInit {
                        name: name.as_str().into(),
                        durable: true,
                        auto_delete: *auto_delete,
                        exclusive_owner: None,
                        arguments: arguments.clone(),
                        args,
                        store: self.store.clone().map(|s| (s, key.into())),
                        recovered,
                        recovered_counts,
                        ram_limit: self.queue_ram_limit,
                        metrics: self.metrics.clone(),
                        policy: policies.applied(name, target),
                        policy_version: policies.version(),
                        clock: self.clock.clone(),
                    },
                    self.me.clone(),
                );
                self.queues.insert(name.clone(), handle);
            }
        }
        // the predeclared exchanges too
        for x in self.exchanges.iter().filter(|x| !x.name.is_empty()) {
            x.set_policy(policies.applied(&x.name, Target::Exchange));
        }
        drop(policies);
        for d in definitions {
            if let Definition::Binding {
                vhost,
                source,
                destination,
                routing_key,
                arguments,
            } = d
            {
                if vhost != &self.name {
                    continue;
                }
                if let Some(x) = self.exchanges.get(source.as_str()) {
                    x.bind(destination.clone(), routing_key, arguments.clone());
                }
            }
        }
        self.resume_delayed();
        restored
    }
}
