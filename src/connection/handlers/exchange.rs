//! exchange.declare, delete, bind and unbind: argument checks happen in the vhost; this file
//! maps the methods onto it and answers.

use amq_protocol::protocol::{exchange, AMQPClass};

use crate::broker::exchange::Destination;
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::vhost::{alternate_exchange_argument, ExchangeSpec};
use crate::connection::channel::ChannelState;
use crate::connection::session::Session;
use crate::protocol::AmqpError;

pub(super) async fn exchange_declare(
    s: &mut Session,
    ch: &mut ChannelState,
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
        s.authorize(Access::Configure, ResourceKind::Exchange, &spec.name)?;
        // As RabbitMQ, for a new exchange with an alternate exchange: read on the exchange
        // and write on its alternate, since messages will be published there
        if s.vhost.exchange(&spec.name).is_err() {
            let ae = alternate_exchange_argument(&spec.arguments, &spec.name, &s.vhost.name)?;
            if let Some(ae) = ae {
                s.broker.permissions.check_alternate_exchange(
                    &s.user,
                    &s.vhost.name,
                    &spec.name,
                    &ae,
                )?;
            }
        }
    }
    s.vhost.declare_exchange(spec, d.passive).await?;
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
        );
    }
    Ok(())
}

pub(super) async fn exchange_delete(
    s: &mut Session,
    ch: &mut ChannelState,
    d: exchange::Delete,
) -> Result<(), AmqpError> {
    s.authorize(
        Access::Configure,
        ResourceKind::Exchange,
        d.exchange.as_str(),
    )?;
    s.vhost
        .delete_exchange(d.exchange.as_str(), d.if_unused)
        .await?;
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
        );
    }
    Ok(())
}

pub(super) async fn exchange_bind(
    s: &mut Session,
    ch: &mut ChannelState,
    d: exchange::Bind,
) -> Result<(), AmqpError> {
    s.authorize_binding(
        ResourceKind::Exchange,
        d.destination.as_str(),
        d.source.as_str(),
        d.routing_key.as_str(),
    )?;
    s.vhost
        .bind(
            d.source.as_str(),
            Destination::Exchange(d.destination.as_str().into()),
            d.routing_key.as_str(),
            d.arguments,
            s.connection_id,
        )
        .await?;
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
        );
    }
    Ok(())
}

pub(super) async fn exchange_unbind(
    s: &mut Session,
    ch: &mut ChannelState,
    d: exchange::Unbind,
) -> Result<(), AmqpError> {
    s.authorize_binding(
        ResourceKind::Exchange,
        d.destination.as_str(),
        d.source.as_str(),
        d.routing_key.as_str(),
    )?;
    s.vhost
        .unbind(
            d.source.as_str(),
            Destination::Exchange(d.destination.as_str().into()),
            d.routing_key.as_str(),
            &d.arguments,
            s.connection_id,
        )
        .await?;
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
        );
    }
    Ok(())
}
