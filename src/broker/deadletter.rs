//! Dead-lettering, as RabbitMQ 3.x does it. A queue whose message leaves without an ack
//! (rejected, expired, pushed out by a length limit, past its delivery limit) and that has
//! `x-dead-letter-exchange` hands a `DeadLetter` to its vhost's dead-letter task, without
//! waiting: the task, not the queue, re-publishes it, so a queue never awaits another
//! queue's mailbox and two queues that dead-letter into each other cannot deadlock.
//!
//! The task adds the `x-death` history (the entry for the same queue and reason moved to
//! the front with its count raised), the `x-first-death-*` headers, drops `expiration`
//! (kept as `original-expiration`) and, with `x-dead-letter-routing-key`, the `CC` header;
//! it routes through the dead-letter exchange like a publisher and drops copies that would
//! go round a cycle with no rejection on the way. A stored copy leaves its old queue's
//! store only once every stored copy in the new queues is committed (at-least-once).

use std::sync::{Arc, Weak};

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use tokio::sync::mpsc;

use super::queue::QueueHandle;
use super::vhost::VHost;
use crate::model::message::Message;
use crate::protocol::content::{headers_of, peek_properties, rewrite_properties};
use crate::store::{Completion, ConfirmToken, Store, StoreOp};

/// Why a message left its queue without an ack (RabbitMQ's `x-death` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    Maxlen,
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// One message on its way from a queue to that queue's dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    pub message: Arc<Message>,
    pub reason: Reason,
    pub queue: Arc<str>,
    pub exchange: String,
    /// `x-dead-letter-routing-key`; None keeps the message's own routing keys.
    pub routing_key: Option<String>,
    /// Taking the copy out of the old queue's store, applied once the new copies are stored.
    pub release: Option<(Store, StoreOp)>,
}

/// Start a vhost's dead-letter task; it ends when the vhost (the sender's owner) goes.
pub fn spawn(vhost: Weak<VHost>) -> mpsc::UnboundedSender<DeadLetter> {
    // Unbounded on purpose: a queue must never wait here (the task may be waiting on that
    // very queue). What it holds is counted by the memory alarm like any queued message.
    let (tx, mut rx) = mpsc::unbounded_channel::<DeadLetter>();
    tokio::spawn(async move {
        while let Some(dl) = rx.recv().await {
            let Some(vhost) = vhost.upgrade() else {
                break;
            };
            publish(&vhost, dl).await;
            vhost
                .dead_letter_backlog
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    tx
}

fn text(v: Option<&AMQPValue>) -> Option<String> {
    match v? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// The CC header's routing keys (sender-selected distribution), if any.
fn cc_keys(headers: &FieldTable) -> Vec<String> {
    match headers.inner().get("CC") {
        Some(AMQPValue::FieldArray(a)) => {
            a.as_slice().iter().filter_map(|v| text(Some(v))).collect()
        }
        _ => Vec::new(),
    }
}

/// One death of a message: where, why and when, and where it goes next.
#[derive(Debug, Clone, Copy)]
pub struct Death<'a> {
    pub reason: Reason,
    pub queue: &'a str,
    /// The exchange and routing key the message was last published with.
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// Its `expiration` property, kept as `original-expiration`.
    pub expiration: Option<&'a str>,
    pub dead_letter_routing_key: Option<&'a str>,
    pub time: u64,
}

/// What the dead-lettered copy is: its headers after this death, and the routing keys it
/// is published with (`x-death` records the keys it had).
pub fn after_death(mut headers: FieldTable, death: &Death<'_>) -> (FieldTable, Vec<String>) {
    let Death {
        reason,
        queue,
        exchange,
        routing_key,
        expiration,
        dead_letter_routing_key,
        time: now_secs,
    } = *death;
    let keys: Vec<String> = match dead_letter_routing_key {
        Some(k) => vec![k.to_owned()],
        None => std::iter::once(routing_key.to_owned())
            .chain(cc_keys(&headers))
            .collect(),
    };
    let death_keys: Vec<String> = match dead_letter_routing_key {
        // x-death records the keys the message had, not the new one
        Some(_) => std::iter::once(routing_key.to_owned())
            .chain(cc_keys(&headers))
            .collect(),
        None => keys.clone(),
    };
    let dropped: &[&str] = match dead_letter_routing_key {
        Some(_) => &["CC", "BCC"],
        None => &["BCC"],
    };
    if dropped.iter().any(|k| headers.inner().contains_key(*k)) {
        let mut kept = FieldTable::default();
        for (k, v) in headers.inner() {
            if !dropped.contains(&k.as_str()) {
                kept.insert(k.clone(), v.clone());
            }
        }
        headers = kept;
    }
    let key_of = |t: &FieldTable| (text(t.inner().get("queue")), text(t.inner().get("reason")));
    let count_of = |t: &FieldTable| match t.inner().get("count") {
        Some(AMQPValue::LongLongInt(n)) => Some(*n),
        Some(AMQPValue::LongInt(n)) => Some(i64::from(*n)),
        _ => None,
    };
    let fresh = || {
        let mut t = FieldTable::default();
        t.insert("count".into(), AMQPValue::LongLongInt(1));
        t.insert("exchange".into(), long_string(exchange));
        if let Some(e) = expiration {
            t.insert("original-expiration".into(), long_string(e));
        }
        t.insert("queue".into(), long_string(queue));
        t.insert("reason".into(), long_string(reason.as_str()));
        let rks: Vec<AMQPValue> = death_keys.iter().map(|k| long_string(k)).collect();
        t.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(rks)),
        );
        t.insert("time".into(), AMQPValue::Timestamp(now_secs));
        t
    };
    let deaths: Vec<AMQPValue> = match headers.inner().get("x-death").cloned() {
        None => {
            // the first death also gets headers of its own
            headers.insert("x-first-death-exchange".into(), long_string(exchange));
            headers.insert("x-first-death-queue".into(), long_string(queue));
            headers.insert("x-first-death-reason".into(), long_string(reason.as_str()));
            vec![AMQPValue::FieldTable(fresh())]
        }
        Some(AMQPValue::FieldArray(a)) => {
            let tables: Vec<&FieldTable> = a
                .as_slice()
                .iter()
                .filter_map(|v| match v {
                    AMQPValue::FieldTable(t) => Some(t),
                    _ => None,
                })
                .collect();
            // RabbitMQ 3.x first groups the history by queue and reason (one entry each,
            // the first seen, counting duplicates), which reverses a history of two or
            // more entries; clients see that order, so Warren keeps it.
            let mut grouped: Vec<FieldTable> = Vec::new();
            if tables.len() == 1 {
                grouped.push(tables[0].clone());
            } else {
                for t in &tables {
                    let key = key_of(t);
                    if grouped.iter().any(|g| key_of(g) == key) {
                        continue;
                    }
                    let mut t = (*t).clone();
                    if count_of(&t).is_none() {
                        let n = tables.iter().filter(|x| key_of(x) == key).count();
                        t.insert("count".into(), AMQPValue::LongLongInt(n as i64));
                    }
                    grouped.insert(0, t);
                }
            }
            let this = (Some(queue.to_owned()), Some(reason.as_str().to_owned()));
            let entry = match grouped.iter().position(|g| key_of(g) == this) {
                Some(i) => {
                    let mut t = grouped.remove(i);
                    // the entry keeps its first time; only its count goes up
                    let n = count_of(&t).unwrap_or(0);
                    t.insert("count".into(), AMQPValue::LongLongInt(n + 1));
                    t
                }
                None => fresh(),
            };
            std::iter::once(entry)
                .chain(grouped)
                .map(AMQPValue::FieldTable)
                .collect()
        }
        // a client turned it into something else: it starts again
        Some(_) => vec![AMQPValue::FieldTable(fresh())],
    };
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    (headers, keys)
}

/// RabbitMQ's cycle rule: a copy for `target` goes round a cycle when `target` is in the
/// history and no death since its last one there was a rejection.
pub fn is_cycle(target: &str, deaths: &[AMQPValue]) -> bool {
    let tables: Vec<&FieldTable> = deaths
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .collect();
    let Some(at) = tables
        .iter()
        .position(|t| text(t.inner().get("queue")).as_deref() == Some(target))
    else {
        return false;
    };
    tables[..=at]
        .iter()
        .all(|t| text(t.inner().get("reason")).as_deref() != Some("rejected"))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Re-publish one dead letter through its exchange.
async fn publish(vhost: &VHost, dl: DeadLetter) {
    // Whatever happens below, the old copy may leave the store once the new ones are in.
    let release = dl
        .release
        .map(|(store, op)| ConfirmToken::new(Completion::Then(store, vec![op])));
    let exchange = if dl.exchange.is_empty() {
        None
    } else {
        match vhost.exchange(&dl.exchange) {
            Ok(x) => Some(x),
            Err(_) => {
                tracing::warn!(
                    "dead-letter exchange '{}' in vhost '{}' does not exist; a message {} from queue '{}' is dropped",
                    dl.exchange,
                    vhost.name,
                    dl.reason.as_str(),
                    dl.queue
                );
                return;
            }
        }
    };
    let m = &dl.message;
    let headers = headers_of(m.properties());
    let expiration = peek_properties(m.properties())
        .unwrap_or_default()
        .expiration
        .map(|r| String::from_utf8_lossy(&m.properties()[r]).into_owned());
    let (headers, keys) = after_death(
        headers,
        &Death {
            reason: dl.reason,
            queue: &dl.queue,
            exchange: &m.exchange,
            routing_key: &m.routing_key,
            expiration: expiration.as_deref(),
            dead_letter_routing_key: dl.routing_key.as_deref(),
            time: now_secs(),
        },
    );
    let Ok(properties) = rewrite_properties(m.properties(), Some(&headers), true) else {
        return;
    };
    // a new message: published to the dead-letter exchange, stored under its own id
    let message = Arc::new(Message {
        exchange: dl.exchange.as_str().into(),
        routing_key: keys.first().map(String::as_str).unwrap_or("").into(),
        expiration: None,
        store_id: crate::model::message::next_store_id(),
        ..m.with_properties(properties)
    });
    let mut targets: Vec<Arc<QueueHandle>> = Vec::new();
    for key in &keys {
        match &exchange {
            None => targets.extend(vhost.route_default(key)),
            Some(x) => {
                let mut h = || Some(headers.clone());
                vhost.route(x, key, &mut h, &mut targets);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|q| seen.insert(Arc::as_ptr(q) as usize));
    if dl.reason != Reason::Rejected {
        if let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") {
            targets.retain(|q| !is_cycle(&q.name, deaths.as_slice()));
        }
    }
    QueueHandle::publish_to(targets, &message, release.as_ref(), |q| q.stores(&message)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deaths(h: &FieldTable) -> Vec<FieldTable> {
        match h.inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a
                .as_slice()
                .iter()
                .filter_map(|v| match v {
                    AMQPValue::FieldTable(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn first_death_adds_history_and_first_death_headers() {
        let (h, keys) = after_death(
            FieldTable::default(),
            &Death {
                reason: Reason::Expired,
                queue: "delay",
                exchange: "orders",
                routing_key: "order.created",
                expiration: Some("5000"),
                dead_letter_routing_key: None,
                time: 42,
            },
        );
        assert_eq!(keys, vec!["order.created"]);
        let d = deaths(&h);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(text(d[0].inner().get("reason")).as_deref(), Some("expired"));
        assert_eq!(
            text(d[0].inner().get("original-expiration")).as_deref(),
            Some("5000")
        );
        assert_eq!(
            text(h.inner().get("x-first-death-queue")).as_deref(),
            Some("delay")
        );
    }

    #[test]
    fn same_queue_and_reason_moves_to_the_front_with_its_count_raised() {
        let (h, _) = after_death(
            FieldTable::default(),
            &Death {
                reason: Reason::Rejected,
                queue: "work",
                exchange: "",
                routing_key: "work",
                expiration: None,
                dead_letter_routing_key: Some("retry"),
                time: 1,
            },
        );
        let (h, _) = after_death(
            h,
            &Death {
                reason: Reason::Expired,
                queue: "retry",
                exchange: "",
                routing_key: "retry",
                expiration: None,
                dead_letter_routing_key: Some("work"),
                time: 2,
            },
        );
        let (h, keys) = after_death(
            h,
            &Death {
                reason: Reason::Rejected,
                queue: "work",
                exchange: "",
                routing_key: "work",
                expiration: None,
                dead_letter_routing_key: Some("retry"),
                time: 3,
            },
        );
        assert_eq!(keys, vec!["retry"]);
        let d = deaths(&h);
        assert_eq!(d.len(), 2);
        assert_eq!(text(d[0].inner().get("queue")).as_deref(), Some("work"));
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(2)));
        assert_eq!(d[0].inner().get("time"), Some(&AMQPValue::Timestamp(1)));
        assert_eq!(
            text(h.inner().get("x-first-death-reason")).as_deref(),
            Some("rejected")
        );
    }

    #[test]
    fn a_history_of_two_or_more_is_grouped_and_reversed_before_the_new_entry_as_rabbitmq() {
        // what RabbitMQ 3.10.8 answered for a message expiring through d2, d1, d0
        let mut h = FieldTable::default();
        for q in ["d2", "d1", "d0"] {
            let death = Death {
                reason: Reason::Expired,
                queue: q,
                exchange: q,
                routing_key: "k",
                expiration: None,
                dead_letter_routing_key: None,
                time: 0,
            };
            h = after_death(h, &death).0;
        }
        let queues: Vec<String> = deaths(&h)
            .iter()
            .filter_map(|d| text(d.inner().get("queue")))
            .collect();
        assert_eq!(queues, vec!["d0", "d2", "d1"]);
        assert_eq!(
            text(h.inner().get("x-first-death-queue")).as_deref(),
            Some("d2")
        );
    }

    #[test]
    fn a_cycle_without_rejection_is_one_but_a_rejection_breaks_it() {
        let (h, _) = after_death(
            FieldTable::default(),
            &Death {
                reason: Reason::Expired,
                queue: "a",
                exchange: "",
                routing_key: "a",
                expiration: None,
                dead_letter_routing_key: None,
                time: 0,
            },
        );
        let d: Vec<AMQPValue> = deaths(&h).into_iter().map(AMQPValue::FieldTable).collect();
        assert!(is_cycle("a", &d));
        assert!(!is_cycle("b", &d));
        let (h, _) = after_death(
            FieldTable::default(),
            &Death {
                reason: Reason::Rejected,
                queue: "a",
                exchange: "",
                routing_key: "a",
                expiration: None,
                dead_letter_routing_key: None,
                time: 0,
            },
        );
        let (h, _) = after_death(
            h,
            &Death {
                reason: Reason::Expired,
                queue: "b",
                exchange: "",
                routing_key: "a",
                expiration: None,
                dead_letter_routing_key: None,
                time: 0,
            },
        );
        let d: Vec<AMQPValue> = deaths(&h).into_iter().map(AMQPValue::FieldTable).collect();
        assert!(!is_cycle("a", &d));
        assert!(is_cycle("b", &d));
    }

    #[test]
    fn a_dead_letter_routing_key_replaces_the_keys_and_drops_cc() {
        let mut h = FieldTable::default();
        h.insert(
            "CC".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![long_string("b")])),
        );
        let (h, keys) = after_death(
            h.clone(),
            &Death {
                reason: Reason::Rejected,
                queue: "q",
                exchange: "x",
                routing_key: "a",
                expiration: None,
                dead_letter_routing_key: None,
                time: 0,
            },
        );
        assert_eq!(keys, vec!["a", "b"]);
        assert!(h.inner().contains_key("CC"));
        let mut h2 = FieldTable::default();
        h2.insert(
            "CC".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![long_string("b")])),
        );
        let (h2, keys) = after_death(
            h2,
            &Death {
                reason: Reason::Rejected,
                queue: "q",
                exchange: "x",
                routing_key: "a",
                expiration: None,
                dead_letter_routing_key: Some("z"),
                time: 0,
            },
        );
        assert_eq!(keys, vec!["z"]);
        assert!(!h2.inner().contains_key("CC"));
        let d = deaths(&h2);
        assert_eq!(
            d[0].inner().get("routing-keys"),
            Some(&AMQPValue::FieldArray(FieldArray::from(vec![
                long_string("a"),
                long_string("b")
            ])))
        );
    }
}
