//! Routing in a vhost: where a published message goes (the default exchange by queue name,
//! else the exchange's bindings, exchange-to-exchange bindings and alternate exchanges),
//! and the exchange statistics a client's publish adds to. Called by the channel's publish
//! path, the management API's publish, the delay and dead-letter tasks; never awaits, and
//! holds no lock beyond one exchange's binding read.

use std::collections::HashSet;
use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::VHost;
use crate::broker::exchange::{Destination, Exchange};
use crate::broker::queue::QueueHandle;
use crate::model::message::Message;
use crate::protocol::content::{decode_headers, peek_properties};

impl VHost {
    /// A client published `message`: the queues it goes to, counted in the statistics of
    /// the exchange it was published to (RabbitMQ's `publish_in`, and `publish_out` per
    /// queue reached).
    pub fn route_publish(&self, message: &Message) -> Vec<Arc<QueueHandle>> {
        if message.exchange.is_empty() {
            let targets: Vec<_> = self
                .route_default(&message.routing_key)
                .into_iter()
                .collect();
            self.default_exchange_stats.published(targets.len());
            return targets;
        }
        let Ok(x) = self.exchange(&message.exchange) else {
            return Vec::new();
        };
        let mut targets = Vec::new();
        self.route_via(&x, message, &mut targets);
        x.stats.published(targets.len());
        targets
    }

    /// A client published `message` to a delayed exchange, which holds it back: it counts
    /// as published in, and as nothing out (the plugin's later release is not a publish).
    pub fn count_held_back(&self, message: &Message) {
        if let Ok(x) = self.exchange(&message.exchange) {
            x.stats.published(0);
        }
    }

    /// The queues a published message goes to: by queue name from the default exchange,
    /// else through its exchange's bindings (headers decoded only if a headers exchange
    /// asks). None when nothing matches or the exchange has gone.
    pub fn targets(&self, message: &Message) -> Vec<Arc<QueueHandle>> {
        let mut targets = Vec::new();
        if message.exchange.is_empty() {
            targets.extend(self.route_default(&message.routing_key));
        } else if let Ok(x) = self.exchange(&message.exchange) {
            self.route_via(&x, message, &mut targets);
        }
        targets
    }

    /// `message` through exchange `x`, its headers decoded only if a headers exchange asks.
    fn route_via(&self, x: &Exchange, message: &Message, out: &mut Vec<Arc<QueueHandle>>) {
        let props = message.properties();
        let mut headers = || {
            let range = peek_properties(props).ok()?.headers?;
            decode_headers(props, range).ok()
        };
        self.route(x, &message.routing_key, &mut headers, out);
    }

    /// Where a message published to `exchange` with `routing_key` goes, following
    /// exchange-to-exchange bindings; each queue once. As RabbitMQ: an exchange that routes
    /// the message nowhere hands it to its alternate exchange, if it has one; an exchange
    /// already visited is not visited again, so chains of alternates end and cycles stop.
    pub fn route(
        &self,
        exchange: &Exchange,
        routing_key: &str,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        out: &mut Vec<Arc<QueueHandle>>,
    ) {
        let mut pending = Vec::new();
        exchange.route(routing_key, headers, &mut pending);
        if pending.is_empty() {
            match exchange.alternate_exchange() {
                Some(ae) => pending.push(Destination::Exchange(ae)),
                None => return,
            }
        }
        let mut seen_queues: HashSet<Arc<str>> = HashSet::new();
        let mut seen_exchanges: HashSet<Arc<str>> = HashSet::from([exchange.name.clone()]);
        while let Some(d) = pending.pop() {
            match d {
                Destination::Queue(name) => {
                    if seen_queues.insert(name.clone()) {
                        if let Some(q) = self.queues.get(name.as_ref()) {
                            out.push(q.clone());
                        }
                    }
                }
                Destination::Exchange(name) => {
                    if seen_exchanges.insert(name.clone()) {
                        if let Some(x) = self.exchanges.get(name.as_ref()).map(|x| x.clone()) {
                            let before = pending.len();
                            x.route(routing_key, headers, &mut pending);
                            if pending.len() == before {
                                if let Some(ae) = x.alternate_exchange() {
                                    pending.push(Destination::Exchange(ae));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The default exchange: the queue named by the routing key.
    pub fn route_default(&self, routing_key: &str) -> Option<Arc<QueueHandle>> {
        self.queues.get(routing_key).map(|q| q.clone())
    }
}
