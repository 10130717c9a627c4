//! exchange.declare, delete, bind and unbind: argument checks happen in the vhost; this file
//! maps the methods onto it and answers.

use amq_protocol::protocol::{exchange, AMQPClass};

use crate::broker::exchange::{Destination, ExchangeKind};
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::vhost::ExchangeSpec;
use crate::connection::Connection;
use crate::protocol::AmqpError;

impl Connection {
    /// (un)binding: write on the destination, read on the source exchange and, when the
    /// source is a topic exchange, read topic permission on the binding key.
    pub(in crate::connection) fn authorize_binding(
        &self,
        kind: ResourceKind,
        destination: &str,
        source: &str,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        self.authorize(Access::Write, kind, destination)?;
        self.authorize(Access::Read, ResourceKind::Exchange, source)?;
        let topic = self
            .vhost
            .exchange(source)
            .is_ok_and(|x| x.kind == ExchangeKind::Topic);
        if topic {
            self.broker.permissions.check_topic(
                &self.user,
                &self.vhost.name,
                source,
                Access::Read,
                routing_key,
            )?;
        }
        Ok(())
    }

    pub(in crate::connection) async fn exchange_declare(
        &mut self,
        ch: u16,
        d: exchange::Declare,
    ) -> Result<(), AmqpError> {
        let spec = ExchangeSpec {
            name: d.exchange.as_str().to_owned(),
            kind: d.kind.as_str().to_owned(),
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
            arguments: d.arguments,
        };
        if !d.passive {
            self.authorize(Access::Configure, ResourceKind::Exchange, &spec.name)?;
        }
        self.vhost.declare_exchange(spec, d.passive).await?;
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn exchange_delete(
        &mut self,
        ch: u16,
        d: exchange::Delete,
    ) -> Result<(), AmqpError> {
        self.authorize(
            Access::Configure,
            ResourceKind::Exchange,
            d.exchange.as_str(),
        )?;
        self.vhost
            .delete_exchange(d.exchange.as_str(), d.if_unused)
            .await?;
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn exchange_bind(
        &mut self,
        ch: u16,
        d: exchange::Bind,
    ) -> Result<(), AmqpError> {
        self.authorize_binding(
            ResourceKind::Exchange,
            d.destination.as_str(),
            d.source.as_str(),
            d.routing_key.as_str(),
        )?;
        self.vhost
            .bind(
                d.source.as_str(),
                Destination::Exchange(d.destination.as_str().into()),
                d.routing_key.as_str(),
                d.arguments,
                self.id,
            )
            .await?;
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn exchange_unbind(
        &mut self,
        ch: u16,
        d: exchange::Unbind,
    ) -> Result<(), AmqpError> {
        self.authorize_binding(
            ResourceKind::Exchange,
            d.destination.as_str(),
            d.source.as_str(),
            d.routing_key.as_str(),
        )?;
        self.vhost
            .unbind(
                d.source.as_str(),
                Destination::Exchange(d.destination.as_str().into()),
                d.routing_key.as_str(),
                &d.arguments,
                self.id,
            )
            .await?;
        if !d.nowait {
            self.send_method(
                ch,
                AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
            );
        }
        Ok(())
    }
}
