//! A scenario step turned into the AMQP method it sends. Pure: no socket, no state; the
//! runner supplies how a name is prefixed for this run. Content (basic.publish) and raw
//! bytes are written by the runner itself.

use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, tx, AMQPClass};
use amq_protocol::types::ShortString;

use crate::scenario::Step;
use crate::wire;

pub fn method(s: &Step, name: impl Fn(Option<&String>) -> String) -> Result<AMQPClass, String> {
    let q = || ShortString::from(name(s.queue.as_ref()));
    let x = || ShortString::from(name(s.exchange.as_ref()));
    let rk = || ShortString::from(s.routing_key.clone().unwrap_or_default());
    // arguments that name an exchange get the run's prefix like every other name
    let arguments = s.arguments.clone().map(|mut m| {
        for key in ["x-dead-letter-exchange", "alternate-exchange"] {
            if let Some(serde_json::Value::String(x)) = m.get(key) {
                let prefixed = name(Some(x));
                m.insert(key.into(), prefixed.into());
            }
        }
        m
    });
    let args = || wire::table(arguments.as_ref());
    let tag = || ShortString::from(s.tag.clone().unwrap_or_default());
    let dtag = s.delivery_tag.unwrap_or(0);
    let f = |n: &str| s.flag(n);
    Ok(match s.op.as_str() {
        "connection.close" => {
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: s.code.unwrap_or(200),
                reply_text: ShortString::from(s.text.clone().unwrap_or_default()),
                class_id: 0,
                method_id: 0,
            }))
        }
        "channel.open" => AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        "channel.close" => AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: s.code.unwrap_or(200),
            reply_text: ShortString::from(s.text.clone().unwrap_or_default()),
            class_id: 0,
            method_id: 0,
        })),
        "channel.flow" => AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow {
            active: f("active"),
        })),
        "exchange.declare" => {
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: x(),
                kind: ShortString::from(s.kind.clone().unwrap_or_else(|| "direct".into())),
                passive: f("passive"),
                durable: f("durable"),
                auto_delete: f("auto_delete"),
                internal: f("internal"),
                nowait: f("nowait"),
                arguments: args(),
            }))
        }
        "exchange.delete" => AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: x(),
            if_unused: f("if_unused"),
            nowait: f("nowait"),
        })),
        "exchange.bind" | "exchange.unbind" => {
            let destination = ShortString::from(name(s.destination.as_ref()));
            if s.op == "exchange.bind" {
                AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                    destination,
                    source: x(),
                    routing_key: rk(),
                    nowait: f("nowait"),
                    arguments: args(),
                }))
            } else {
                AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                    destination,
                    source: x(),
                    routing_key: rk(),
                    nowait: f("nowait"),
                    arguments: args(),
                }))
            }
        }
        "queue.declare" => AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: q(),
            passive: f("passive"),
            durable: f("durable"),
            exclusive: f("exclusive"),
            auto_delete: f("auto_delete"),
            nowait: f("nowait"),
            arguments: args(),
        })),
        "queue.bind" => AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: q(),
            exchange: x(),
            routing_key: rk(),
            nowait: f("nowait"),
            arguments: args(),
        })),
        "queue.unbind" => AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: q(),
            exchange: x(),
            routing_key: rk(),
            arguments: args(),
        })),
        "queue.purge" => AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
            queue: q(),
            nowait: f("nowait"),
        })),
        "queue.delete" => AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: q(),
            if_unused: f("if_unused"),
            if_empty: f("if_empty"),
            nowait: f("nowait"),
        })),
        "basic.qos" => AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: s.prefetch.unwrap_or(0),
            global: f("global"),
        })),
        "basic.consume" => AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: q(),
            consumer_tag: tag(),
            no_local: f("no_local"),
            no_ack: f("no_ack"),
            exclusive: f("exclusive"),
            nowait: f("nowait"),
            arguments: args(),
        })),
        "basic.cancel" => AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: tag(),
            nowait: f("nowait"),
        })),
        "basic.get" => AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: q(),
            no_ack: f("no_ack"),
        })),
        "basic.ack" => AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: dtag,
            multiple: f("multiple"),
        })),
        "basic.nack" => AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: dtag,
            multiple: f("multiple"),
            requeue: f("requeue"),
        })),
        "basic.reject" => AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
            delivery_tag: dtag,
            requeue: f("requeue"),
        })),
        "basic.recover" => AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover {
            requeue: f("requeue"),
        })),
        "confirm.select" => AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: f("nowait"),
        })),
        "tx.select" => AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})),
        "tx.commit" => AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
        "tx.rollback" => AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
        other => return Err(format!("unknown op '{other}'")),
    })
}
