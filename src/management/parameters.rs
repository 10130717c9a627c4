//! Cluster-wide settings and the small endpoints around them, on RabbitMQ's paths: the
//! cluster name, global parameters, runtime parameters (Warren's one component is
//! `vhost-limits`), user limits (max-connections, max-channels), feature flags, the auth settings the UI reads, bulk user
//! deletion and the queue actions of mirrored queues. Whatever RabbitMQ would act on and
//! Warren does not is refused with a 400 that names it, never stored and ignored. Also
//! Warren's one endpoint of its own: moving a test broker's manual clock.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{created_or_updated, no_content};
use super::objects::{body_json, visible_vhost};
use super::{Admin, ApiError, Authenticated};
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route(
            "/api/cluster-name",
            get(get_cluster_name).put(put_cluster_name),
        )
        .route("/api/global-parameters", get(list_global_parameters))
        .route(
            "/api/global-parameters/{name}",
            get(get_global_parameter)
                .put(put_global_parameter)
                .delete(delete_global_parameter),
        )
        .route("/api/parameters", get(list_parameters))
        .route("/api/parameters/{component}", get(list_component))
        .route(
            "/api/parameters/{component}/{vhost}",
            get(list_component_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(get_parameter)
                .put(put_parameter)
                .delete(delete_parameter),
        )
        .route("/api/user-limits", get(list_user_limits))
        .route("/api/user-limits/{user}", get(get_user_limits))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(put_user_limit).delete(delete_user_limit),
        )
        .route("/api/feature-flags", get(feature_flags))
        .route("/api/auth", get(auth))
        .route("/api/users/bulk-delete", post(bulk_delete_users))
        .route("/api/queues/{vhost}/{name}/actions", post(queue_action))
        .route("/api/rebalance/queues", post(rebalance_queues))
        .route("/api/clock/advance", post(advance_clock))
}

/// `POST /api/clock/advance {"milliseconds": N}`: TTLs, queue expiry and the consumer
/// timeout see N more milliseconds pass. Only for a broker started with `manual_clock`.
async fn advance_clock(State(state): St, _: Admin, bytes: Bytes) -> ApiResult {
    let body = body_json(&bytes)?;
    let ms = body
        .get("milliseconds")
        .ok_or_else(|| key_missing("milliseconds"))?
        .as_u64()
        .ok_or_else(|| ApiError::bad_request("milliseconds must be a non-negative integer"))?;
    if !state.clock.advance(std::time::Duration::from_millis(ms)) {
        return Err(ApiError::bad_request(
            "this broker runs on the real clock; start it with manual_clock = true to advance it",
        ));
    }
    no_content()
}

/// RabbitMQ's text for a body without a key it needs.
fn key_missing(key: &str) -> ApiError {
    ApiError::bad_request(format!("[{{key_missing,{key}}}]"))
}

// ---- cluster name and global parameters ----

async fn get_cluster_name(State(state): St, _: Authenticated) -> ApiResult {
    Ok(Json(json!({"name": state.cluster_name()})).into_response())
}

async fn put_cluster_name(State(state): St, _: Admin, bytes: Bytes) -> ApiResult {
    let body = body_json(&bytes)?;
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "cluster name must be a non-empty string",
            ))
        }
        None => return Err(key_missing("name")),
    };
    state
        .set_global_parameter("cluster_name", Value::String(name).to_string())
        .await;
    no_content()
}

pub(super) fn global_json(name: &str, value: &str) -> Value {
    json!({"name": name, "value": serde_json::from_str::<Value>(value).unwrap_or(Value::Null)})
}

async fn list_global_parameters(State(state): St, _: Admin) -> ApiResult {
    let list: Vec<Value> = state
        .global_parameters()
        .iter()
        .map(|(n, v)| global_json(n, v))
        .collect();
    Ok(Json(list).into_response())
}

async fn get_global_parameter(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    let value = state
        .global_parameter(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(global_json(&name, &value)).into_response())
}

/// Global parameters are data RabbitMQ keeps for plugins and tools; the one the broker
/// itself acts on is `cluster_name`, which must be a name.
async fn put_global_parameter(
    State(state): St,
    _: Admin,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let body = body_json(&bytes)?;
    let value = body.get("value").ok_or_else(|| key_missing("value"))?;
    if name == "cluster_name" && value.as_str().is_none_or(|n| n.is_empty()) {
        return Err(ApiError::bad_request(
            "cluster_name must be a non-empty string",
        ));
    }
    let created = state.global_parameter(&name).is_none();
    state.set_global_parameter(&name, value.to_string()).await;
    created_or_updated(created)
}

async fn delete_global_parameter(
    State(state): St,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    if state.clear_global_parameter(&name).await {
        no_content()
    } else {
        Err(ApiError::not_found())
    }
}

// ---- runtime parameters: vhost limits are the only component ----

const VHOST_LIMITS: &str = "vhost-limits";

fn unknown_component(component: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Validation failed\n\ncomponent {component} not found\n"
    ))
}

/// Every parameter of the vhosts this user may see, filtered by component and vhost.
fn parameters(
    state: &BrokerState,
    user: &Authenticated,
    component: Option<&str>,
    vhost: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    if let Some(c) = component.filter(|c| *c != VHOST_LIMITS) {
        return Err(unknown_component(c));
    }
    let vhosts = match vhost {
        Some(v) => vec![visible_vhost(state, user, v)?],
        None => super::objects::visible_vhosts(state, user),
    };
    Ok(vhosts
        .iter()
        .filter(|v| !v.meta().limits.is_empty())
        .map(|v| {
            json!({
                "vhost": v.name,
                "component": VHOST_LIMITS,
                "name": "limits",
                "value": v.meta().limits,
            })
        })
        .collect())
}

async fn list_parameters(State(state): St, user: Authenticated) -> ApiResult {
    Ok(Json(parameters(&state, &user, None, None)?).into_response())
}

async fn list_component(State(state): St, user: Authenticated, Path(c): Path<String>) -> ApiResult {
    Ok(Json(parameters(&state, &user, Some(&c), None)?).into_response())
}

async fn list_component_vhost(
    State(state): St,
    user: Authenticated,
    Path((c, vhost)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(parameters(&state, &user, Some(&c), Some(&vhost))?).into_response())
}

async fn get_parameter(
    State(state): St,
    user: Authenticated,
    Path((c, vhost, name)): Path<(String, String, String)>,
) -> ApiResult {
    let list = parameters(&state, &user, Some(&c), Some(&vhost))?;
    match list.into_iter().find(|p| p["name"] == name.as_str()) {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::not_found()),
    }
}

/// `vhost-limits/VHOST/limits` with `{"value": {"max-connections": N, ...}}` replaces the
/// vhost's limits, as RabbitMQ's parameter of that name.
async fn put_parameter(
    State(state): St,
    _: Admin,
    Path((c, vhost, name)): Path<(String, String, String)>,
    bytes: Bytes,
) -> ApiResult {
    if c != VHOST_LIMITS {
        return Err(unknown_component(&c));
    }
    if name != "limits" {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\nvhost-limits parameters are named 'limits', not '{name}'\n"
        )));
    }
    let body = body_json(&bytes)?;
    let Some(Value::Object(value)) = body.get("value") else {
        return Err(key_missing("value"));
    };
    let mut wanted = Vec::new();
    for (limit, n) in value {
        let n = n.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("Validation failed\n\n{limit} must be an integer\n"))
        })?;
        wanted.push((limit.clone(), n));
    }
    let v = state.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let old: Vec<String> = v.meta().limits.keys().cloned().collect();
    for (limit, n) in &wanted {
        state.set_vhost_limit(&vhost, limit, Some(*n)).await?;
    }
    for limit in old.iter().filter(|o| !wanted.iter().any(|(w, _)| w == *o)) {
        state.set_vhost_limit(&vhost, limit, None).await?;
    }
    no_content()
}

async fn delete_parameter(
    State(state): St,
    _: Admin,
    Path((c, vhost, name)): Path<(String, String, String)>,
) -> ApiResult {
    if c != VHOST_LIMITS {
        return Err(unknown_component(&c));
    }
    let v = state.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    if name != "limits" || v.meta().limits.is_empty() {
        return Err(ApiError::not_found());
    }
    let old: Vec<String> = v.meta().limits.keys().cloned().collect();
    for limit in old {
        state.set_vhost_limit(&vhost, &limit, None).await?;
    }
    no_content()
}

// ---- user limits, feature flags, auth ----

fn user_limits_entry(u: &crate::broker::auth::User) -> Value {
    json!({"user": u.name, "value": super::api::user_limits_json(u)})
}

async fn list_user_limits(State(state): St, _: Admin) -> ApiResult {
    let list: Vec<Value> = state
        .users
        .list()
        .iter()
        .filter(|u| !u.limits.is_empty())
        .map(user_limits_entry)
        .collect();
    Ok(Json(list).into_response())
}

async fn get_user_limits(State(state): St, _: Admin, Path(user): Path<String>) -> ApiResult {
    let u = state.users.get(&user).ok_or_else(ApiError::not_found)?;
    let list = if u.limits.is_empty() {
        vec![]
    } else {
        vec![user_limits_entry(&u)]
    };
    Ok(Json(list).into_response())
}

/// `{"value": N}`: max-connections or max-channels, a negative value for no limit.
async fn put_user_limit(
    State(state): St,
    _: Admin,
    Path((user, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let body = body_json(&bytes)?;
    let value = body.get("value").ok_or_else(|| key_missing("value"))?;
    let n = value.as_i64().ok_or_else(|| {
        ApiError::bad_request(format!("{name} should be a number, actually was {value}"))
    })?;
    state.set_user_limit(&user, &name, Some(n)).await?;
    no_content()
}

async fn delete_user_limit(
    State(state): St,
    _: Admin,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult {
    state.set_user_limit(&user, &name, None).await?;
    no_content()
}

/// Warren has no feature flags: every capability it has is always on.
async fn feature_flags(_: Authenticated) -> ApiResult {
    Ok(Json(json!([])).into_response())
}

/// What RabbitMQ's UI reads to choose its login: basic auth only, no OAuth 2.
async fn auth() -> ApiResult {
    Ok(Json(json!({"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""})).into_response())
}

#[derive(Deserialize)]
struct BulkDelete {
    users: Vec<String>,
}

/// Delete several users; as RabbitMQ, the first unknown name stops the request.
async fn bulk_delete_users(State(state): St, _: Admin, bytes: Bytes) -> ApiResult {
    let b: BulkDelete = serde_json::from_slice(&bytes).map_err(|_| key_missing("users"))?;
    for name in &b.users {
        if state.users.get(name).is_none() {
            return Err(ApiError::bad_request(format!("[no_such_user,{name}]")));
        }
    }
    for name in &b.users {
        state.delete_user(name).await?;
    }
    no_content()
}

/// `sync` and `cancel_sync` act on mirrored queues; Warren's queues have no mirrors, so,
/// as on a RabbitMQ queue without mirrors, there is nothing to do.
async fn queue_action(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    v.queue(&name).map_err(|_| ApiError::not_found())?;
    let body = body_json(&bytes)?;
    match body.get("action").and_then(Value::as_str) {
        Some("sync") | Some("cancel_sync") => no_content(),
        Some(other) => Err(ApiError::bad_request(format!("[unknown,{other}]"))),
        None => Err(key_missing("action")),
    }
}

/// Queue leaders are rebalanced across a cluster's nodes; one node has nothing to move.
async fn rebalance_queues(_: Admin) -> ApiResult {
    no_content()
}
