//! queue.declare, bind, unbind, purge and delete. Server-named queues get RabbitMQ's
//! `amq.gen-` names; an empty queue name elsewhere means the channel's last declared queue.

use amq_protocol::protocol::{queue, AMQPClass};

use crate::broker::exchange::Destination;
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::queue::{QueueArgs, QueueCmd};
use crate::broker::vhost::QueueSpec;
use crate::connection::Connection;
use crate::protocol::AmqpError;

fn server_named() -> String {
    super::server_generated("amq.gen-")
}

impl Connection {
    /// As RabbitMQ at declare time: a queue with a dead-letter exchange needs read on the
    /// queue and write on that exchange, since its messages will be published there.
    fn authorize_dead_letter_exchange(
        &self,
        queue: &str,
        arguments: &amq_protocol::types::FieldTable,
    ) -> Result<(), AmqpError> {
        let dlx = match arguments.inner().get("x-dead-letter-exchange") {
            Some(amq_protocol::types::AMQPValue::LongString(s)) => {
                String::from_utf8_lossy(s.as_bytes()).into_owned()
            }
            Some(amq_protocol::types::AMQPValue::ShortString(s)) => s.as_str().to_owned(),
            _ => return Ok(()), // absent, or a wrong type that the declare refuses
        };
        self.authorize(Access::Read, ResourceKind::Queue, queue)?;
        self.authorize(Access::Write, ResourceKind::Exchange, &dlx)
    }

    /// RabbitMQ's shortcuts for queue.bind/unbind: an empty queue is the last declared one,
    /// and with an empty routing key too, the key is that queue's name.
    fn binding_queue_and_key(
        &self,
        ch: u16,
        queue: &str,
        routing_key: &str,
    ) -> Result<(String, String), AmqpError> {
        let name = self.queue_name(ch, queue)?;
        let key = if queue.is_empty() && routing_key.is_empty() {
            name.clone()
        } else {
            routing_key.to_owned()
        };
        Ok((name, key))
    }

    /// Resolve RabbitMQ's "empty name = last declared queue" shorthand.
    fn queue_name(&self, ch: u16, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.channels
            .get(&ch)
            .and_then(|c| c.last_queue.clone())
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    pub(in crate::connection) async fn queue_declare(
        &mut self,
        ch: u16,
        d: queue::Declare,
    ) -> Result<(), AmqpError> {
        let requested = d.queue.as_str();
        let (handle, created) = if d.passive {
            // the "last declared queue" shortcut is not applied to queue.declare itself:
            // a passive declare of "" asks for the queue named "", as in RabbitMQ
            let q = self.vhost.queue_for(requested, self.id)?;
            if q.args.expires.is_some() {
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
            self.authorize(Access::Configure, ResourceKind::Queue, &name)?;
            self.authorize_dead_letter_exchange(&name, &d.arguments)?;
            self.vhost
                .declare_queue(
                    QueueSpec {
                        name,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments,
                    },
                    self.id,
                )
                .await?
        };
        if created && handle.exclusive_owner.is_some() {
            self.exclusive_queues.push(handle.clone());
        }
        if let Some(state) = self.channels.get_mut(&ch) {
            state.last_queue = Some(handle.name.to_string());
        }
        if !d.nowait {
            let stats = self.vhost.queue_stats(&handle).await;
            self.send_method(
                ch,
                AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue: handle.name.as_ref().into(),
                    message_count: stats.messages,
                    consumer_count: stats.consumers,
                })),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn queue_bind(
        &mut self,
        ch: u16,
        d: queue::Bind,
    ) -> Result<(), AmqpError> {
        let (name, key) =
            self.binding_queue_and_key(ch, d.queue.as_str(), d.routing_key.as_str())?;
        self.authorize_binding(ResourceKind::Queue, &name, d.exchange.as_str(), &key)?;
        self.vhost
            .bind(
                d.exchange.as_str(),
                Destination::Queue(name.as_str().into()),
                &key,
                d.arguments,
                self.id,
            )
            .await?;
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn queue_unbind(
        &mut self,
        ch: u16,
        d: queue::Unbind,
    ) -> Result<(), AmqpError> {
        let (name, key) =
            self.binding_queue_and_key(ch, d.queue.as_str(), d.routing_key.as_str())?;
        self.authorize_binding(ResourceKind::Queue, &name, d.exchange.as_str(), &key)?;
        self.vhost
            .unbind(
                d.exchange.as_str(),
                Destination::Queue(name.as_str().into()),
                &key,
                &d.arguments,
                self.id,
            )
            .await?;
        self.send_method(
            ch,
            AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        );
        Ok(())
    }

    pub(in crate::connection) async fn queue_purge(
        &mut self,
        ch: u16,
        d: queue::Purge,
    ) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, d.queue.as_str())?;
        self.authorize(Access::Read, ResourceKind::Queue, &name)?;
        let q = self.vhost.queue_for(&name, self.id)?;
        let n = q.ask(|reply| QueueCmd::Purge { reply }).await.unwrap_or(0);
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                    message_count: n,
                })),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn queue_delete(
        &mut self,
        ch: u16,
        d: queue::Delete,
    ) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, d.queue.as_str())?;
        self.authorize(Access::Configure, ResourceKind::Queue, &name)?;
        let n = match self.vhost.queue(&name) {
            Err(_) => 0, // idempotent, as RabbitMQ 3.x
            Ok(_) => {
                let q = self.vhost.queue_for(&name, self.id)?;
                let n = self.vhost.delete_queue(&q, d.if_unused, d.if_empty).await?;
                self.exclusive_queues
                    .retain(|x| !std::sync::Arc::ptr_eq(x, &q));
                n
            }
        };
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count: n,
                })),
            );
        }
        Ok(())
    }
}
