//! The routes for queues and exchanges on RabbitMQ's paths, with its JSON field names and
//! status codes, and the checks every object route shares (which vhosts a user sees, their
//! permissions, AMQP refusals as API errors). Declaring and deleting go through the vhost
//! exactly as the AMQP methods do (same checks, same texts). Queue figures come from each
//! queue's actor when asked; nothing here keeps statistics of its own.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::created_or_updated;
use super::json::{json_to_table, table_to_json};
use super::listing::{paginate, ListQuery};
use super::rated::{counters_rated, insert_rated};
use super::{ApiError, Authenticated};
use crate::broker::exchange::stats::ExchangeStats;
use crate::broker::exchange::Exchange;
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::queue::stats::QueueInfo;
use crate::broker::queue::{QueueCmd, QueueHandle};
use crate::broker::vhost::{ExchangeSpec, QueueSpec, VHost};
use crate::broker::BrokerState;
use crate::protocol::{reply, AmqpError};

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

/// The connection id the API acts as: no connection has it, so it owns no exclusive queue.
pub(super) const NO_CONNECTION: u64 = 0;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/queues", get(list_queues))
        .route("/api/queues/{vhost}", get(list_vhost_queues))
        .route(
            "/api/queues/{vhost}/{name}",
            get(get_queue).put(put_queue).delete(delete_queue),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(purge_queue),
        )
        .route("/api/exchanges", get(list_exchanges))
        .route("/api/exchanges/{vhost}", get(list_vhost_exchanges))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(get_exchange).put(put_exchange).delete(delete_exchange),
        )
        .merge(super::bindings::routes())
        .merge(super::messages::routes())
        .merge(super::node::routes())
        .merge(super::connections::routes())
        .merge(super::channels::routes())
        .merge(super::parameters::routes())
        .merge(super::consumers::routes())
        .merge(super::definitions::routes())
        .merge(super::health::routes())
}

/// An AMQP refusal as the management API reports it: 404 for what does not exist, 401
/// for permissions, 400 with RabbitMQ's text (without the AMQP prefix) for the rest.
pub(super) fn from_amqp(e: AmqpError) -> ApiError {
    let detail = e
        .text
        .split_once(" - ")
        .map_or(e.text.as_str(), |(_, d)| d)
        .to_owned();
    match e.code {
        reply::NOT_FOUND => ApiError::not_found(),
        reply::ACCESS_REFUSED => ApiError::not_authorised(&detail),
        _ => ApiError::bad_request(detail),
    }
}

/// The vhost, if it exists and the user may see it (any permission there, or the
/// administrator or monitoring tag, as RabbitMQ's management plugin decides).
pub(super) fn visible_vhost(
    state: &BrokerState,
    user: &Authenticated,
    name: &str,
) -> Result<Arc<VHost>, ApiError> {
    let vhost = state.vhost(name).ok_or_else(ApiError::not_found)?;
    if sees_everything(user) || state.permissions.get(&user.0.name, name).is_some() {
        Ok(vhost)
    } else {
        Err(ApiError::not_authorised("Access refused."))
    }
}

pub(super) fn sees_everything(user: &Authenticated) -> bool {
    user.0.is_administrator() || user.0.has_tag("monitoring")
}

pub(super) fn visible_vhosts(state: &BrokerState, user: &Authenticated) -> Vec<Arc<VHost>> {
    state
        .vhost_list()
        .into_iter()
        .filter(|v| sees_everything(user) || state.permissions.get(&user.0.name, &v.name).is_some())
        .collect()
}

pub(super) fn authorize(
    state: &BrokerState,
    user: &Authenticated,
    vhost: &VHost,
    access: Access,
    kind: ResourceKind,
    name: &str,
) -> Result<(), ApiError> {
    state
        .permissions
        .check(&user.0.name, &vhost.name, access, kind, name)
        .map_err(from_amqp)
}

pub fn node_name(state: &BrokerState) -> String {
    state.config.node_name()
}

/// The exchange a path names: RabbitMQ's API calls the default exchange `amq.default`.
pub(super) fn exchange_name(path: &str) -> &str {
    if path == "amq.default" {
        ""
    } else {
        path
    }
}

pub(super) fn body_json(bytes: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// A boolean field of a request body; RabbitMQ also takes "true"/"false" strings.
pub(super) fn flag(body: &Map<String, Value>, key: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be true or false, got {other}"
        ))),
    }
}

pub(super) fn arguments(
    body: &Map<String, Value>,
) -> Result<amq_protocol::types::FieldTable, ApiError> {
    json_to_table(body.get("arguments").unwrap_or(&Value::Null)).map_err(ApiError::bad_request)
}

// ---- queues ----

async fn queue_info(q: &QueueHandle) -> QueueInfo {
    q.ask(|reply| QueueCmd::Info { reply })
        .await
        .unwrap_or_default()
}

fn queue_json(state: &BrokerState, vhost: &str, q: &QueueHandle, info: &QueueInfo) -> Value {
    let node = node_name(state);
    let consumer_details: Vec<Value> = info
        .consumer_details
        .iter()
        .map(|c| super::consumers::consumer_json(state, vhost, &q.name, c))
        .collect();
    let mut stats = Map::new();
    insert_rated(&mut stats, counters_rated(&info.counters, info.rates));
    let messages = info.messages_ready + info.messages_unacknowledged;
    json!({
        "name": q.name.as_ref(),
        "vhost": vhost,
        "node": node,
        "type": if q.args.is_quorum() { "quorum" } else { "classic" },
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.arguments),
        "state": "running",
        "consumers": info.consumers,
        "messages": messages,
        "messages_ready": info.messages_ready,
        "messages_unacknowledged": info.messages_unacknowledged,
        "messages_details": {"rate": info.depth_rates[0]},
        "messages_ready_details": {"rate": info.depth_rates[1]},
        "messages_unacknowledged_details": {"rate": info.depth_rates[2]},
        "message_bytes": info.message_bytes_ready + info.message_bytes_unacknowledged,
        "message_bytes_ready": info.message_bytes_ready,
        "message_bytes_unacknowledged": info.message_bytes_unacknowledged,
        "messages_persistent": info.messages_persistent,
        "messages_ram": messages - info.messages_paged_out,
        "messages_ready_ram": info.messages_ready - info.messages_paged_out,
        "messages_unacknowledged_ram": info.messages_unacknowledged,
        "messages_paged_out": info.messages_paged_out,
        // paged-out bodies are not in memory, so not in the byte counts either
        "message_bytes_ram": info.message_bytes_ready + info.message_bytes_unacknowledged,
        "consumer_utilisation": info.consumer_utilisation,
        "consumer_capacity": info.consumer_utilisation,
        "head_message_timestamp": info.head_message_timestamp,
        "exclusive_consumer_tag": info.exclusive_consumer_tag,
        "single_active_consumer_tag": info.single_active_consumer_tag,
        "message_stats": stats,
        "policy": info.policy.policy_name(),
        "operator_policy": info.policy.operator_name(),
        "effective_policy_definition": info.policy.effective_definition(),
        "consumer_details": consumer_details,
    })
}

async fn queues_json(state: &BrokerState, vhosts: &[Arc<VHost>]) -> Vec<Value> {
    let mut out = Vec::new();
    for v in vhosts {
        for q in v.queue_list() {
            let info = queue_info(&q).await;
            out.push(queue_json(state, &v.name, &q, &info));
        }
    }
    out
}

async fn list_queues(
    State(state): St,
    user: Authenticated,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let vhosts = visible_vhosts(&state, &user);
    paginate(queues_json(&state, &vhosts).await, &q)
}

async fn list_vhost_queues(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    paginate(queues_json(&state, &[v]).await, &q)
}

async fn get_queue(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let q = v.queue(&name).map_err(from_amqp)?;
    let info = queue_info(&q).await;
    Ok(Json(queue_json(&state, &v.name, &q, &info)).into_response())
}

async fn put_queue(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let b = body_json(&bytes)?;
    if name.starts_with("amq.") {
        return Err(ApiError::bad_request(format!(
            "queue name '{name}' contains reserved prefix 'amq.*'"
        )));
    }
    authorize(
        &state,
        &user,
        &v,
        Access::Configure,
        ResourceKind::Queue,
        &name,
    )?;
    let spec = QueueSpec {
        name,
        durable: flag(&b, "durable", true)?,
        // exclusive queues belong to a connection; the API has none
        exclusive: false,
        auto_delete: flag(&b, "auto_delete", false)?,
        arguments: arguments(&b)?,
    };
    let (_, created) = v
        .declare_queue(spec, NO_CONNECTION)
        .await
        .map_err(from_amqp)?;
    created_or_updated(created)
}

#[derive(Deserialize, Default)]
struct DeleteQuery {
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
}

async fn delete_queue(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    Query(d): Query<DeleteQuery>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let q = v.queue(&name).map_err(from_amqp)?;
    authorize(
        &state,
        &user,
        &v,
        Access::Configure,
        ResourceKind::Queue,
        &name,
    )?;
    let q = v.queue_for(&q.name, NO_CONNECTION).map_err(from_amqp)?;
    let yes = |s: &Option<String>| s.as_deref() == Some("true");
    v.delete_queue(&q, yes(&d.if_unused), yes(&d.if_empty))
        .await
        .map_err(from_amqp)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn purge_queue(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let q = v.queue(&name).map_err(from_amqp)?;
    authorize(&state, &user, &v, Access::Read, ResourceKind::Queue, &name)?;
    let q = v.queue_for(&q.name, NO_CONNECTION).map_err(from_amqp)?;
    q.ask(|reply| QueueCmd::Purge { reply }).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- exchanges ----

/// RabbitMQ's `message_stats` of an exchange: absent until something was published to
/// it, and `publish_out` absent until something was routed on.
fn exchange_stats_json(out: &mut Value, stats: &ExchangeStats) {
    let c = stats.counts();
    if c.publish_in == 0 {
        return;
    }
    let mut m = json!({
        "publish_in": c.publish_in,
        "publish_in_details": {"rate": c.rates[0]},
    });
    if c.publish_out > 0 {
        m["publish_out"] = json!(c.publish_out);
        m["publish_out_details"] = json!({"rate": c.rates[1]});
    }
    out["message_stats"] = m;
}

fn exchange_json(vhost: &str, x: &Exchange) -> Value {
    let mut out = json!({
        "name": x.name.as_ref(),
        "vhost": vhost,
        "type": x.type_name(),
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": table_to_json(&x.arguments),
        "user_who_performed_action": "",
    });
    // as RabbitMQ: the key is there only when a policy applies
    if let Some(name) = x.policy().policy_name() {
        out["policy"] = json!(name);
    }
    exchange_stats_json(&mut out, &x.stats);
    out
}

/// The default exchange, which routes by queue name and has no entry of its own.
fn default_exchange_json(v: &VHost) -> Value {
    let mut out = json!({
        "name": "",
        "vhost": v.name,
        "type": "direct",
        "durable": true,
        "auto_delete": false,
        "internal": false,
        "arguments": {},
        "user_who_performed_action": "rmq-internal",
    });
    exchange_stats_json(&mut out, &v.default_exchange_stats);
    out
}

fn exchanges_json(vhosts: &[Arc<VHost>]) -> Vec<Value> {
    let mut out = Vec::new();
    for v in vhosts {
        out.push(default_exchange_json(v));
        out.extend(v.exchange_list().iter().map(|x| exchange_json(&v.name, x)));
    }
    out
}

async fn list_exchanges(
    State(state): St,
    user: Authenticated,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    paginate(exchanges_json(&visible_vhosts(&state, &user)), &q)
}

async fn list_vhost_exchanges(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    paginate(exchanges_json(&[v]), &q)
}

async fn get_exchange(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let name = exchange_name(&name);
    if name.is_empty() {
        return Ok(Json(default_exchange_json(&v)).into_response());
    }
    let x = v.exchange(name).map_err(from_amqp)?;
    Ok(Json(exchange_json(&v.name, &x)).into_response())
}

async fn put_exchange(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let b = body_json(&bytes)?;
    let name = exchange_name(&name).to_owned();
    let Some(Value::String(kind)) = b.get("type") else {
        return Err(ApiError::bad_request("type not specified"));
    };
    authorize(
        &state,
        &user,
        &v,
        Access::Configure,
        ResourceKind::Exchange,
        &name,
    )?;
    let existed = v.exchange(&name).is_ok();
    let spec = ExchangeSpec {
        name,
        kind: kind.clone(),
        durable: flag(&b, "durable", true)?,
        auto_delete: flag(&b, "auto_delete", false)?,
        internal: flag(&b, "internal", false)?,
        arguments: arguments(&b)?,
    };
    if !existed {
        // as over AMQP: naming an alternate needs read here and write there
        let ae =
            crate::broker::vhost::alternate_exchange_argument(&spec.arguments, &spec.name, &v.name)
                .map_err(from_amqp)?;
        if let Some(ae) = ae {
            state
                .permissions
                .check_alternate_exchange(&user.0.name, &v.name, &spec.name, &ae)
                .map_err(from_amqp)?;
        }
    }
    v.declare_exchange(spec, false).await.map_err(from_amqp)?;
    created_or_updated(!existed)
}

async fn delete_exchange(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    Query(d): Query<DeleteQuery>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let name = exchange_name(&name);
    if !name.is_empty() {
        v.exchange(name).map_err(from_amqp)?;
    }
    authorize(
        &state,
        &user,
        &v,
        Access::Configure,
        ResourceKind::Exchange,
        name,
    )?;
    let if_unused = d.if_unused.as_deref() == Some("true");
    v.delete_exchange(name, if_unused)
        .await
        .map_err(from_amqp)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
