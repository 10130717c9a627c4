//! Definitions in RabbitMQ's format: `GET /api/definitions` exports users (with their
//! password hashes), vhosts, permissions, topic permissions, vhost limits (as RabbitMQ's
//! `vhost-limits` parameters), global parameters, policies, queues, exchanges and
//! bindings; `POST` imports such a file, as exported by RabbitMQ 3.x or by Warren, in
//! RabbitMQ's order (users, vhosts, permissions, limits, policies, exchanges, queues,
//! bindings). Per vhost, only that vhost's limits, policies, queues, exchanges and
//! bindings. What Warren cannot honour (other runtime parameters, a policy that fails
//! RabbitMQ's checks) is refused by name before anything is imported, never skipped.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{permission_json, topic_json, user_json, Tags};
use super::json::{json_to_table, table_to_json};
use super::objects::{from_amqp, NO_CONNECTION};
use super::{Admin, ApiError};
use crate::broker::admin::PasswordSpec;
use crate::broker::auth::HASHING_ALGORITHM;
use crate::broker::exchange::Destination;
use crate::broker::permissions::TopicPermission;
use crate::broker::policy::{Policy, PolicyKind};
use crate::broker::vhost::{ExchangeSpec, QueueSpec, VHost, VHostMeta};
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/definitions", get(export_all).post(import_all))
        // RabbitMQ keeps the old name of the same resource for older scripts.
        .route("/api/all-configuration", get(export_all).post(import_all))
        .route(
            "/api/definitions/{vhost}",
            get(export_vhost).post(import_vhost),
        )
}

/// A vhost's queues, exchanges (not the predeclared ones) and declared bindings.
fn vhost_objects(v: &VHost) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let queues = v
        .queue_list()
        .iter()
        .filter(|q| q.exclusive_owner.is_none())
        .map(|q| {
            json!({"name": q.name.as_ref(), "vhost": v.name, "durable": q.durable,
                   "auto_delete": q.auto_delete, "arguments": table_to_json(&q.arguments)})
        })
        .collect();
    let mut exchanges = Vec::new();
    let mut bindings = Vec::new();
    for x in v.exchange_list() {
        if !x.name.starts_with("amq.") {
            exchanges.push(
                json!({"name": x.name.as_ref(), "vhost": v.name, "type": x.type_name(),
                "durable": x.durable, "auto_delete": x.auto_delete, "internal": x.internal,
                "arguments": table_to_json(&x.arguments)}),
            );
        }
        for b in x.bindings() {
            let (destination, kind) = match &b.destination {
                Destination::Queue(q) => (q.to_string(), "queue"),
                Destination::Exchange(e) => (e.to_string(), "exchange"),
            };
            bindings.push(
                json!({"source": x.name.as_ref(), "vhost": v.name, "destination": destination,
                "destination_type": kind, "routing_key": b.routing_key,
                "arguments": table_to_json(&b.arguments)}),
            );
        }
    }
    (queues, exchanges, bindings)
}

fn limits_parameter(v: &VHost) -> Option<Value> {
    let limits = v.meta().limits;
    (!limits.is_empty()).then(
        || json!({"value": limits, "vhost": v.name, "component": "vhost-limits", "name": "limits"}),
    )
}

async fn export_all(State(state): St, _: Admin) -> ApiResult {
    let c = &state.config;
    let vhosts = state.vhost_list();
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for v in &vhosts {
        let (q, x, b) = vhost_objects(v);
        queues.extend(q);
        exchanges.extend(x);
        bindings.extend(b);
    }
    let vhosts_json: Vec<Value> = vhosts
        .iter()
        .map(|v| {
            let meta = v.meta();
            json!({"name": v.name, "description": meta.description, "tags": meta.tags})
        })
        .collect();
    let mut users: Vec<Value> = state.users.list().iter().map(user_json).collect();
    users.sort_by_key(|u| u["name"].as_str().unwrap_or_default().to_owned());
    Ok(Json(json!({
        "rabbit_version": c.product_version,
        "rabbitmq_version": c.product_version,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "users": users,
        "vhosts": vhosts_json,
        "permissions": state.permissions.list(|_| true).iter().map(|p| permission_json(p)).collect::<Vec<_>>(),
        "topic_permissions": state.permissions.list_topic(|_| true).iter().map(topic_json).collect::<Vec<_>>(),
        "parameters": vhosts.iter().filter_map(|v| limits_parameter(v)).collect::<Vec<_>>(),
        "global_parameters": state.global_parameters().iter().map(|(n, v)| super::parameters::global_json(n, v)).collect::<Vec<_>>(),
        "policies": policies_json(&vhosts),
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }))
    .into_response())
}

/// Policies, as RabbitMQ exports them (operator policies are not exported).
fn policies_json(vhosts: &[Arc<VHost>]) -> Vec<Value> {
    vhosts
        .iter()
        .flat_map(|v| v.policies(PolicyKind::Policy))
        .map(|p| p.to_json())
        .collect()
}

async fn export_vhost(State(state): St, _: Admin, Path(vhost): Path<String>) -> ApiResult {
    let v = state.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let (queues, exchanges, bindings) = vhost_objects(&v);
    Ok(Json(json!({
        "rabbit_version": state.config.product_version,
        "rabbitmq_version": state.config.product_version,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "parameters": limits_parameter(&v).into_iter().collect::<Vec<_>>(),
        "policies": policies_json(std::slice::from_ref(&v)),
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct UserDef {
    name: String,
    password_hash: Option<String>,
    hashing_algorithm: Option<String>,
    #[serde(default)]
    tags: Tags,
    /// Per-user limits (max-connections, max-channels).
    #[serde(default)]
    limits: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct VHostDef {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Tags,
    /// RabbitMQ 3.11+: the type of queues declared without x-queue-type.
    #[serde(default)]
    default_queue_type: Option<String>,
}

#[derive(Deserialize)]
struct PermissionDef {
    user: String,
    vhost: String,
    configure: String,
    write: String,
    read: String,
}

#[derive(Deserialize)]
struct TopicDef {
    user: String,
    vhost: String,
    exchange: String,
    write: String,
    read: String,
}

#[derive(Deserialize)]
struct ParameterDef {
    vhost: Option<String>,
    component: String,
    name: String,
    value: Value,
}

#[derive(Deserialize)]
struct GlobalParameterDef {
    name: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
struct PolicyDef {
    name: String,
    vhost: Option<String>,
    /// pattern, definition, priority, apply-to: checked by `Policy::parse`
    #[serde(flatten)]
    body: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct QueueDef {
    name: String,
    vhost: Option<String>,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct ExchangeDef {
    name: String,
    vhost: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct BindingDef {
    source: String,
    vhost: Option<String>,
    destination: String,
    destination_type: String,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Value,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
struct Definitions {
    #[serde(default)]
    users: Vec<UserDef>,
    #[serde(default)]
    vhosts: Vec<VHostDef>,
    #[serde(default)]
    permissions: Vec<PermissionDef>,
    #[serde(default)]
    topic_permissions: Vec<TopicDef>,
    #[serde(default)]
    parameters: Vec<ParameterDef>,
    #[serde(default)]
    global_parameters: Vec<GlobalParameterDef>,
    #[serde(default)]
    policies: Vec<PolicyDef>,
    #[serde(default)]
    queues: Vec<QueueDef>,
    #[serde(default)]
    exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    bindings: Vec<BindingDef>,
}

/// What this import asks for that Warren cannot do yet, named, before anything changes.
fn refuse_unsupported(d: &Definitions) -> Result<(), ApiError> {
    for u in &d.users {
        for (name, value) in &u.limits {
            if !["max-connections", "max-channels"].contains(&name.as_str()) || !value.is_i64() {
                return Err(ApiError::bad_request(format!(
                    "user '{}': limit '{name}' = {value} is not supported (max-connections, max-channels, integers)",
                    u.name
                )));
            }
        }
    }
    let other_type = |v: &&VHostDef| {
        v.default_queue_type
            .as_deref()
            .is_some_and(|t| t != "classic")
    };
    if let Some(v) = d.vhosts.iter().find(other_type) {
        return Err(ApiError::bad_request(format!(
            "vhost '{}' has default_queue_type '{}': Warren supports only classic",
            v.name,
            v.default_queue_type.as_deref().unwrap_or_default()
        )));
    }
    if let Some(p) = d.parameters.iter().find(|p| p.component != "vhost-limits") {
        return Err(ApiError::bad_request(format!(
            "runtime parameter '{}' of component '{}' cannot be imported: Warren does not support it",
            p.name, p.component
        )));
    }
    if let Some(g) = d
        .global_parameters
        .iter()
        .find(|g| g.name == "cluster_name" && g.value.as_str().is_none_or(|n| n.is_empty()))
    {
        return Err(ApiError::bad_request(format!(
            "global parameter '{}' must be a non-empty string",
            g.name
        )));
    }
    Ok(())
}

fn vhost_of(
    state: &BrokerState,
    named: Option<&str>,
    fixed: Option<&str>,
) -> Result<Arc<VHost>, ApiError> {
    let name = fixed
        .or(named)
        .unwrap_or(&state.config.default_vhost)
        .to_owned();
    state
        .vhost(&name)
        .ok_or_else(|| ApiError::bad_request(format!("vhost '{name}' does not exist")))
}

fn table(v: &Value) -> Result<amq_protocol::types::FieldTable, ApiError> {
    json_to_table(v).map_err(ApiError::bad_request)
}

/// Import `d`; with `only`, everything goes into that vhost and server-wide parts are
/// refused, as RabbitMQ's per-vhost import.
async fn import(state: &BrokerState, d: Definitions, only: Option<&str>) -> Result<(), ApiError> {
    refuse_unsupported(&d)?;
    // every policy is checked before anything changes
    let mut policies = Vec::new();
    for p in &d.policies {
        let vhost = only
            .or(p.vhost.as_deref())
            .unwrap_or(&state.config.default_vhost);
        let policy = Policy::parse(PolicyKind::Policy, vhost, &p.name, &p.body)
            .map_err(|e| ApiError::bad_request(format!("policy '{}': {}", p.name, e.reason())))?;
        policies.push(policy);
    }
    if only.is_some() && !(d.users.is_empty() && d.vhosts.is_empty() && d.permissions.is_empty()) {
        return Err(ApiError::bad_request(
            "a vhost's definitions cannot hold users, vhosts or permissions",
        ));
    }
    // internal_cluster_id names a RabbitMQ cluster for its own telemetry: not carried over
    for g in d
        .global_parameters
        .iter()
        .filter(|g| only.is_none() && g.name != "internal_cluster_id")
    {
        state
            .set_global_parameter(&g.name, g.value.to_string())
            .await;
    }
    for u in d.users {
        if let Some(alg) = u
            .hashing_algorithm
            .as_deref()
            .filter(|a| *a != HASHING_ALGORITHM)
        {
            return Err(ApiError::bad_request(format!(
                "user '{}': hashing_algorithm '{alg}' is not supported, only {HASHING_ALGORITHM}",
                u.name
            )));
        }
        let password = match u.password_hash.as_deref() {
            None | Some("") => PasswordSpec::None,
            Some(h) => PasswordSpec::Hash(
                base64::engine::general_purpose::STANDARD
                    .decode(h.trim())
                    .map_err(|e| {
                        ApiError::bad_request(format!("user '{}': password_hash: {e}", u.name))
                    })?,
            ),
        };
        let tags = u.tags.into_vec().unwrap_or_default();
        state.put_user(&u.name, password, tags).await?;
        for (limit, value) in &u.limits {
            state.set_user_limit(&u.name, limit, value.as_i64()).await?;
        }
    }
    for v in d.vhosts {
        let old = state.vhost(&v.name).map(|x| x.meta()).unwrap_or_default();
        let meta = VHostMeta {
            description: v.description.unwrap_or(old.description),
            tags: v.tags.into_vec().unwrap_or(old.tags),
            limits: old.limits,
        };
        state.add_vhost(&v.name, meta).await?;
    }
    for p in d.permissions {
        state
            .set_permissions(&p.user, &p.vhost, &p.configure, &p.write, &p.read)
            .await?;
    }
    for t in d.topic_permissions {
        state
            .set_topic_permissions(TopicPermission {
                user: t.user,
                vhost: t.vhost,
                exchange: t.exchange,
                write: t.write,
                read: t.read,
            })
            .await?;
    }
    for p in d.parameters {
        let vhost = vhost_of(state, p.vhost.as_deref(), only)?;
        let Value::Object(limits) = p.value else {
            return Err(ApiError::bad_request(
                "vhost-limits value must be an object",
            ));
        };
        for (name, value) in limits {
            let Some(n) = value.as_i64() else {
                return Err(ApiError::bad_request(format!(
                    "vhost limit '{name}' must be an integer"
                )));
            };
            state.set_vhost_limit(&vhost.name, &name, Some(n)).await?;
        }
    }
    for p in policies {
        let vhost = vhost_of(state, Some(&p.vhost), only)?;
        vhost.set_policy(PolicyKind::Policy, p).await;
    }
    for x in d.exchanges {
        let vhost = vhost_of(state, x.vhost.as_deref(), only)?;
        let spec = ExchangeSpec {
            name: x.name,
            kind: x.kind,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: table(&x.arguments)?,
        };
        vhost
            .declare_exchange(spec, false)
            .await
            .map_err(from_amqp)?;
    }
    for q in d.queues {
        let vhost = vhost_of(state, q.vhost.as_deref(), only)?;
        let spec = QueueSpec {
            name: q.name,
            durable: q.durable,
            exclusive: false,
            auto_delete: q.auto_delete,
            arguments: table(&q.arguments)?,
        };
        vhost
            .declare_queue(spec, NO_CONNECTION)
            .await
            .map_err(from_amqp)?;
    }
    for b in d.bindings {
        let vhost = vhost_of(state, b.vhost.as_deref(), only)?;
        let destination = match b.destination_type.as_str() {
            "queue" => Destination::Queue(b.destination.as_str().into()),
            "exchange" => Destination::Exchange(b.destination.as_str().into()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown destination_type '{other}'"
                )))
            }
        };
        vhost
            .bind(
                &b.source,
                destination,
                &b.routing_key,
                table(&b.arguments)?,
                NO_CONNECTION,
            )
            .await
            .map_err(from_amqp)?;
    }
    Ok(())
}

/// Import a definitions file at start-up (`load_definitions`); the error says why not.
pub async fn import_file(state: &BrokerState, bytes: &[u8]) -> Result<(), String> {
    let d: Definitions = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    import(state, d, None).await.map_err(|e| e.reason)
}

fn parse(bytes: &Bytes) -> Result<Definitions, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("definitions: {e}")))
}

async fn import_all(State(state): St, _: Admin, bytes: Bytes) -> ApiResult {
    import(&state, parse(&bytes)?, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn import_vhost(
    State(state): St,
    _: Admin,
    Path(vhost): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    state.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    import(&state, parse(&bytes)?, Some(&vhost)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
