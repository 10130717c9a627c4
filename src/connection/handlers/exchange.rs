//! exchange.declare, delete, bind and unbind: argument checks happen in the vhost; this file
//! maps the methods onto it and answers.

use amq_protocol::protocol::{exchange, AMQPClass};

use crate::broker::exchange::Destination;
use crate::broker::vhost::ExchangeSpec;
use crate::connection::Connection;
use crate::protocol::AmqpError;

impl Connection {
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
        self.vhost
            .bind(
                d.source.as_str(),
                Destination::Exchange(d.destination.as_str().into()),
                d.routing_key.as_str(),
                d.arguments,
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
        self.vhost
            .unbind(
                d.source.as_str(),
                Destination::Exchange(d.destination.as_str().into()),
                d.routing_key.as_str(),
                &d.arguments,
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
