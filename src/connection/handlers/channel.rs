//! channel.flow and channel.close from the client.

use std::sync::atomic::Ordering;

use amq_protocol::protocol::{channel, AMQPClass};

use crate::broker::queue::QueueCmd;
use crate::connection::Connection;
use crate::protocol::AmqpError;

impl Connection {
    /// As RabbitMQ 3.x: a client may not pause deliveries with flow(active=false) (540,
    /// closing the connection; prefetch is the way); flow(active=true) is answered.
    pub(in crate::connection) async fn channel_flow(
        &mut self,
        ch: u16,
        active: bool,
    ) -> Result<(), AmqpError> {
        if !active {
            return Err(AmqpError::not_implemented("active=false"));
        }
        let Some(state) = self.channels.get(&ch) else {
            return Ok(());
        };
        state.link.flow_active.store(active, Ordering::Release);
        let queues = if active {
            state.consumed_queues()
        } else {
            Vec::new()
        };
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })),
        );
        for q in queues {
            q.send(QueueCmd::Kick).await;
        }
        Ok(())
    }

    pub(in crate::connection) async fn channel_close(&mut self, ch: u16) -> Result<(), AmqpError> {
        if let Some(state) = self.channels.remove(&ch) {
            self.teardown_channel(state).await;
        }
        self.closed_by_client.push(ch);
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        );
        Ok(())
    }
}
