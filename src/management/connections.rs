//! Client connections on RabbitMQ's paths: `/api/connections`, per vhost, one by name, and
//! `DELETE` to close one (320 CONNECTION_FORCED with the `X-Reason` header's text, or
//! RabbitMQ's default reason). Administrators and monitoring users see every connection,
//! other users their own. The connection's own task does the closing.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::json::table_to_json;
use super::listing::{paginate, ListQuery};
use super::objects::{node_name, visible_vhost};
use super::{ApiError, Authenticated};
use crate::broker::connections::ConnectionInfo;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/connections", get(list_connections))
        .route(
            "/api/connections/{name}",
            get(get_connection).delete(close_connection),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(list_vhost_connections),
        )
}

fn connection_json(node: &str, c: &ConnectionInfo) -> Value {
    let [recv_oct, send_oct] = c.traffic.octets();
    let rates = c.octet_rates();
    let mut json = json!({
        "name": c.name,
        "node": node,
        "type": "network",
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "auth_mechanism": "PLAIN",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "ssl": c.tls.is_some(),
        "ssl_protocol": c.tls.as_ref().map(|t| t.protocol.clone()),
        "ssl_cipher": c.tls.as_ref().map(|t| t.cipher.clone()),
        "ssl_key_exchange": c.tls.as_ref().map(|t| t.key_exchange.clone()),
        "ssl_hash": c.tls.as_ref().map(|t| t.hash.clone()),
        "peer_cert_subject": c.tls.as_ref().and_then(|t| t.peer_cert_subject.clone()),
        "peer_cert_issuer": c.tls.as_ref().and_then(|t| t.peer_cert_issuer.clone()),
        "peer_cert_validity": c.tls.as_ref().and_then(|t| t.peer_cert_validity.clone()),
        "recv_oct": recv_oct,
        "recv_cnt": c.traffic.recv_cnt.load(Ordering::Relaxed),
        "send_oct": send_oct,
        "send_cnt": c.traffic.send_cnt.load(Ordering::Relaxed),
        "recv_oct_details": {"rate": rates[0]},
        "send_oct_details": {"rate": rates[1]},
        "channels": c.channel_count(),
        "frame_max": c.frame_max,
        "channel_max": c.channel_max,
        "timeout": c.heartbeat,
        "connected_at": c.connected_at,
        "client_properties": table_to_json(&c.client_properties),
    });
    // RabbitMQ lists the field only for connections that named themselves.
    if let Some(given) = c.user_provided_name() {
        json["user_provided_name"] = json!(given);
    }
    json
}

pub(super) fn sees_all(user: &Authenticated) -> bool {
    user.0.is_administrator() || user.0.has_tag("monitoring")
}

fn visible(
    state: &BrokerState,
    user: &Authenticated,
    keep: impl Fn(&ConnectionInfo) -> bool,
) -> Vec<Value> {
    let node = node_name(state);
    state
        .connection_registry
        .list()
        .iter()
        .filter(|c| sees_all(user) || c.user == user.0.name)
        .filter(|c| keep(c))
        .map(|c| connection_json(&node, c))
        .collect()
}

async fn list_connections(
    State(state): St,
    user: Authenticated,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    paginate(visible(&state, &user, |_| true), &q)
}

async fn list_vhost_connections(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    paginate(visible(&state, &user, |c| c.vhost == v.name), &q)
}

/// The named connection, if this user may see it.
pub(super) fn find_connection(
    state: &BrokerState,
    user: &Authenticated,
    name: &str,
) -> Result<Arc<ConnectionInfo>, ApiError> {
    state
        .connection_registry
        .by_name(name)
        .filter(|c| sees_all(user) || c.user == user.0.name)
        .ok_or_else(ApiError::not_found)
}

async fn get_connection(
    State(state): St,
    user: Authenticated,
    Path(name): Path<String>,
) -> ApiResult {
    let c = find_connection(&state, &user, &name)?;
    Ok(Json(connection_json(&node_name(&state), &c)).into_response())
}

async fn close_connection(
    State(state): St,
    user: Authenticated,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let c = find_connection(&state, &user, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin")
        .to_owned();
    c.request_close(reason);
    Ok(StatusCode::NO_CONTENT.into_response())
}
