//! Consumers on RabbitMQ's paths, `/api/consumers[/VHOST]`, and the `consumer_details` of a
//! queue: each consumer with its queue, its channel and connection, acknowledgement mode,
//! prefetch and whether it is the active one. Figures come from the queues' actors.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::objects::{node_name, visible_vhost, visible_vhosts};
use super::{ApiError, Authenticated};
use crate::broker::queue::stats::ConsumerDetail;
use crate::broker::queue::QueueCmd;
use crate::broker::vhost::VHost;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/consumers", get(list_consumers))
        .route("/api/consumers/{vhost}", get(list_vhost_consumers))
}

pub fn consumer_json(state: &BrokerState, vhost: &str, queue: &str, c: &ConsumerDetail) -> Value {
    let connection = state.connection_registry.by_id(c.connection_id);
    let channel_details = match &connection {
        Some(conn) => json!({
            "connection_name": conn.name,
            "name": format!("{} ({})", conn.name, c.channel_id),
            "number": c.channel_id,
            "node": node_name(state),
            "peer_host": conn.peer.ip().to_string(),
            "peer_port": conn.peer.port(),
            "user": conn.user,
        }),
        None => json!({"number": c.channel_id}),
    };
    let arguments = if c.priority != 0 {
        json!({"x-priority": c.priority})
    } else {
        json!({})
    };
    json!({
        "consumer_tag": c.tag,
        "queue": {"name": queue, "vhost": vhost},
        "channel_details": channel_details,
        "ack_required": c.ack_required,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch_count,
        "active": c.active,
        "activity_status": if c.active { "up" } else { "waiting" },
        "arguments": arguments,
    })
}

async fn consumers_of(state: &BrokerState, vhosts: &[Arc<VHost>]) -> Vec<Value> {
    let mut out = Vec::new();
    for v in vhosts {
        for q in v.queue_list() {
            let info = q
                .ask(|reply| QueueCmd::Info { reply })
                .await
                .unwrap_or_default();
            for c in &info.consumer_details {
                out.push(consumer_json(state, &v.name, &q.name, c));
            }
        }
    }
    out
}

async fn list_consumers(State(state): St, user: Authenticated) -> ApiResult {
    let vhosts = visible_vhosts(&state, &user);
    Ok(Json(consumers_of(&state, &vhosts).await).into_response())
}

async fn list_vhost_consumers(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    Ok(Json(consumers_of(&state, &[v]).await).into_response())
}
