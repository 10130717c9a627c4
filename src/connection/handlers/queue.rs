//! queue.declare, bind, unbind, purge and delete. Server-named queues get RabbitMQ's
//! `amq.gen-` names; an empty queue name elsewhere means the channel's last declared queue.

use amq_protocol::protocol::{queue, AMQPClass};

use crate::broker::exchange::Destination;
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::queue::{QueueArgs, QueueCmd};
use crate::broker::vhost::QueueSpec;
use crate::connection::channel::ChannelState;
use crate::connection::session::Session;
use crate::protocol::AmqpError;

fn server_named() -> String {
    super::server_generated("amq.gen-")
}

/// As RabbitMQ at declare time: a queue with a dead-letter exchange needs read on the
/// queue and write on that exchange, since its messages will be published there.
fn authorize_dead_letter_exchange(
    s: &Session,
    queue: &str,
    arguments: &amq_protocol::types::FieldTable,
) -> Result<(), AmqpError> {
    let dlx = match arguments.inner().get("x-dead-letter-exchange") {
        Some(amq_protocol::types::AMQPValue::LongString(name)) => {
            String::from_utf8_lossy(name.as_bytes()).into_owned()
        }
        Some(amq_protocol::types::AMQPValue::ShortString(name)) => name.as_str().to_owned(),
        _ => return Ok(()), // absent, or a wrong type that the declare refuses
    };
    s.authorize(Access::Read, ResourceKind::Queue, queue)?;
    s.authorize(Access::Write, ResourceKind::Exchange, &dlx)
}

/// RabbitMQ's shortcuts for queue.bind/unbind: an empty queue is the last declared one,
/// and with an empty routing key too, the key is that queue's name.
fn binding_queue_and_key(
    ch: &ChannelState,
    queue: &str,
    routing_key: &str,
) -> Result<(String, String), AmqpError> {
    let name = ch.queue_name(queue)?;
    let key = if queue.is_empty() && routing_key.is_empty() {
        name.clone()
    } else {
        routing_key.to_owned()
    };
    Ok((name, key))
}

pub(super) async fn queue_declare(
    s: &mut Session,
    ch: &mut ChannelState,
    d: queue::Declare,
) -> Result<(), AmqpError> {
    if let Some(answered) = super::direct_reply::declare(s, ch, &d) {
        return answered;
    }
    let requested = d.queue.as_str();
    let (handle, created) = if d.passive {
        // the "last declared queue" shortcut is not applied to queue.declare itself:
        // a passive declare of "" asks for the queue named "", as in RabbitMQ
        let q = s.vhost.queue_for(requested, s.connection_id)?;
        if q.expires() {
            // as RabbitMQ: a passive declare renews an x-expires lease too
            q.send(QueueCmd::Touch).await;
        }
        (q, false)
    } else {
        if requested.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "queue name '{requested}' contains reserved prefix 'amq.*'"
            )));
        }
        let name = if requested.is_empty() {
            QueueArgs::check_server_named(&d.arguments)?;
            server_named()
        } else {
            requested.to_owned()
        };
        s.authorize(Access::Configure, ResourceKind::Queue, &name)?;
        authorize_dead_letter_exchange(s, &name, &d.arguments)?;
        s.vhost
            .declare_queue(
                QueueSpec {
                    name,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: d.arguments,
                },
                s.connection_id,
            )
            .await?
    };
    if created && handle.exclusive_owner.is_some() {
        s.exclusive_queues.push(handle.clone());
    }
    ch.last_queue = Some(handle.name.to_string());
    if !d.nowait {
        let stats = s.vhost.queue_stats(&handle).await;
        s.send_method(
            ch.id(),
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: handle.name.as_ref().into(),
                message_count: stats.messages,
                consumer_count: stats.consumers,
            })),
        );
    }
    Ok(())
}

pub(super) async fn queue_bind(
    s: &mut Session,
    ch: &mut ChannelState,
    d: queue::Bind,
) -> Result<(), AmqpError> {
    let (name, key) = binding_queue_and_key(ch, d.queue.as_str(), d.routing_key.as_str())?;
    s.authorize_binding(ResourceKind::Queue, &name, d.exchange.as_str(), &key)?;
    s.vhost
        .bind(
            d.exchange.as_str(),
            Destination::Queue(name.as_str().into()),
            &key,
            d.arguments,
            s.connection_id,
        )
        .await?;
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        );
    }
    Ok(())
}

pub(super) async fn queue_unbind(
    s: &mut Session,
    ch: &mut ChannelState,
    d: queue::Unbind,
) -> Result<(), AmqpError> {
    let (name, key) = binding_queue_and_key(ch, d.queue.as_str(), d.routing_key.as_str())?;
    s.authorize_binding(ResourceKind::Queue, &name, d.exchange.as_str(), &key)?;
    s.vhost
        .unbind(
            d.exchange.as_str(),
            Destination::Queue(name.as_str().into()),
            &key,
            &d.arguments,
            s.connection_id,
        )
        .await?;
    s.send_method(
        ch.id(),
        AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
    );
    Ok(())
}

pub(super) async fn queue_purge(
    s: &mut Session,
    ch: &mut ChannelState,
    d: queue::Purge,
) -> Result<(), AmqpError> {
    let name = ch.queue_name(d.queue.as_str())?;
    s.authorize(Access::Read, ResourceKind::Queue, &name)?;
    let q = s.vhost.queue_for(&name, s.connection_id)?;
    let n = q.ask(|reply| QueueCmd::Purge { reply }).await.unwrap_or(0);
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                message_count: n,
            })),
        );
    }
    Ok(())
}

pub(super) async fn queue_delete(
    s: &mut Session,
    ch: &mut ChannelState,
    d: queue::Delete,
) -> Result<(), AmqpError> {
    let name = ch.queue_name(d.queue.as_str())?;
    s.authorize(Access::Configure, ResourceKind::Queue, &name)?;
    let n = match s.vhost.queue(&name) {
        Err(_) => 0, // idempotent, as RabbitMQ 3.x
        Ok(_) => {
            let q = s.vhost.queue_for(&name, s.connection_id)?;
            let n = s.vhost.delete_queue(&q, d.if_unused, d.if_empty).await?;
            s.exclusive_queues
                .retain(|x| !std::sync::Arc::ptr_eq(x, &q));
            n
        }
    };
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: n,
            })),
        );
    }
    Ok(())
}
