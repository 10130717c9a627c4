//! Channels on RabbitMQ's paths: `/api/channels`, per vhost, per connection, and one by
//! name ("PEER -> LOCAL (N)"). Each connection's own task describes its channels when
//! asked (`ConnectionRequest::Channels`); nothing here counts anything or holds a lock on
//! the message path. Who sees what follows `/api/connections`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::connections::{find_connection, sees_all};
use super::listing::{paginate, ListQuery};
use super::objects::{node_name, visible_vhost};
use super::rated::{counters_rated, insert_rated};
use super::{ApiError, Authenticated};
use crate::broker::connections::{ChannelSnapshot, ConnectionInfo};
use crate::broker::queue::QueueCmd;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/channels", get(list_channels))
        .route("/api/channels/{name}", get(get_channel))
        .route("/api/vhosts/{vhost}/channels", get(list_vhost_channels))
        .route(
            "/api/connections/{name}/channels",
            get(list_connection_channels),
        )
}

fn channel_name(c: &ConnectionInfo, number: u16) -> String {
    format!("{} ({number})", c.name)
}

fn channel_json(node: &str, c: &ConnectionInfo, ch: &ChannelSnapshot) -> Value {
    let mut stats = Map::new();
    insert_rated(&mut stats, counters_rated(&ch.counters, ch.rates));
    insert_rated(&mut stats, ch.publisher);
    json!({
        "name": channel_name(c, ch.number),
        "number": ch.number,
        "node": node,
        "connection_details": {
            "name": c.name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "vhost": c.vhost,
        "user": c.user,
        "user_who_performed_action": c.user,
        "state": "running",
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "consumer_count": ch.consumer_count,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "messages_uncommitted": ch.messages_uncommitted,
        "acks_uncommitted": ch.acks_uncommitted,
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "message_stats": stats,
    })
}

/// Every channel of the connections this user may see and `keep` accepts.
async fn channels_of(
    state: &BrokerState,
    user: &Authenticated,
    keep: impl Fn(&ConnectionInfo) -> bool,
) -> Vec<Value> {
    let node = node_name(state);
    let mut out = Vec::new();
    for c in state.connection_registry.list() {
        if !(sees_all(user) || c.user == user.0.name) || !keep(&c) {
            continue;
        }
        for ch in c.channels().await {
            out.push(channel_json(&node, &c, &ch));
        }
    }
    out
}

async fn list_channels(
    State(state): St,
    user: Authenticated,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    paginate(channels_of(&state, &user, |_| true).await, &q)
}

async fn list_vhost_channels(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    paginate(channels_of(&state, &user, |c| c.vhost == v.name).await, &q)
}

async fn list_connection_channels(
    State(state): St,
    user: Authenticated,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let c = find_connection(&state, &user, &name)?;
    paginate(
        channels_of(&state, &user, |other| other.id == c.id).await,
        &q,
    )
}

/// One channel, with its consumers as RabbitMQ's channel page shows them.
async fn get_channel(State(state): St, user: Authenticated, Path(name): Path<String>) -> ApiResult {
    let (connection, number) = name
        .rsplit_once(" (")
        .and_then(|(conn, rest)| Some((conn, rest.strip_suffix(')')?.parse::<u16>().ok()?)))
        .ok_or_else(ApiError::not_found)?;
    let c = find_connection(&state, &user, connection)?;
    let ch = c
        .channels()
        .await
        .into_iter()
        .find(|ch| ch.number == number)
        .ok_or_else(ApiError::not_found)?;
    let mut body = channel_json(&node_name(&state), &c, &ch);
    let mut consumers = Vec::new();
    if let Some(v) = state.vhost(&c.vhost) {
        for q in v.queue_list() {
            let info = q
                .ask(|reply| QueueCmd::Info { reply })
                .await
                .unwrap_or_default();
            for d in info
                .consumer_details
                .iter()
                .filter(|d| d.connection_id == c.id && d.channel_id == number)
            {
                consumers.push(super::consumers::consumer_json(&state, &v.name, &q.name, d));
            }
        }
    }
    body["consumer_details"] = Value::Array(consumers);
    Ok(Json(body).into_response())
}
