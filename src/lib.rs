//! Warren: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
//!
//! Layers, outermost first: `server` (listeners, lifetime) -> `connection` (one task per
//! client: handshake, channels, dispatch) -> `broker` (vhosts, exchanges, queue actors) ->
//! `protocol` (pure wire format). `config` is the typed configuration.
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
