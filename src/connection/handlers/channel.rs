//! channel.flow and channel.close from the client.

use amq_protocol::protocol::{channel, AMQPClass};

use crate::connection::Connection;
use crate::protocol::AmqpError;

impl Connection {
    /// As RabbitMQ 3.x: a client may not pause deliveries with flow(active=false) (540,
    /// closing the connection; prefetch is the way); flow(active=true) is answered.
    pub(in crate::connection) fn channel_flow(
        &mut self,
        ch: u16,
        active: bool,
    ) -> Result<(), AmqpError> {
        if !active {
            return Err(AmqpError::not_implemented("active=false"));
        }
        // deliveries are never paused by the client, so there is nothing to resume
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })),
        );
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
