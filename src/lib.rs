//! Warren: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
//!
//! Layers, outermost first: `server` (listeners, lifetime) -> `connection` (one task per
//! client: handshake, channels, dispatch) -> `broker` (vhosts, exchanges, queue actors) ->
//! `protocol` (pure wire format). `store` (durability) sits beside `broker` and below it;
//! `model` (the `Message` every layer passes, binding destinations) is below both and only
//! uses `protocol`. `config` is the typed configuration.
//!
//! A publish: socket -> `connection` assembles the message -> `broker::vhost` routes it ->
//! each queue actor (`broker::queue`) stores it through its journal and hands it to a
//! consumer with credit -> the consumer's connection writes it out. A message leaving a
//! queue without an ack goes to the vhost's dead-letter task, which publishes it again.
//!
//! Embedding, e.g. in a test:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = warren::Broker::builder()
//!     .listen("127.0.0.1:0".parse()?)
//!     .data_dir(std::env::temp_dir().join("warren-test"))
//!     .start()
//!     .await?;
//! let url = format!("amqp://guest:guest@{}/%2f", broker.local_addr());
//! # let _ = url;
//! broker.shutdown().await;
//! # Ok(()) }
//! ```

pub mod broker;
pub mod config;
pub mod connection;
pub mod management;
pub mod model;
pub mod protocol;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{Broker, BrokerBuilder, StartError};
