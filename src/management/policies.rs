//! Policies and operator policies on RabbitMQ's paths (`/api/policies`,
//! `/api/operator-policies`): list, read, set, clear. Who may do what follows RabbitMQ:
//! any management user lists the policies of the vhosts it sees; setting, reading one and
//! clearing take the administrator tag or the policymaker tag with access to the vhost;
//! operator policies are for administrators only. The checks and reasons are the
//! broker's (`broker::policy`); this module maps them onto HTTP.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::api::{created_or_updated, no_content};
use super::objects::{body_json, visible_vhost, visible_vhosts};
use super::{Admin, ApiError, Authenticated};
use crate::broker::policy::{Policy, PolicyKind};
use crate::broker::vhost::VHost;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/policies", get(list_policies))
        .route("/api/policies/{vhost}", get(list_vhost_policies))
        .route(
            "/api/policies/{vhost}/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/api/operator-policies", get(list_operator_policies))
        .route(
            "/api/operator-policies/{vhost}",
            get(list_vhost_operator_policies),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(get_operator_policy)
                .put(put_operator_policy)
                .delete(delete_operator_policy),
        )
}

fn listing(vhosts: &[Arc<VHost>], kind: PolicyKind) -> Response {
    let mut all: Vec<(f64, Value)> = vhosts
        .iter()
        .flat_map(|v| v.policies(kind))
        .map(|p| (p.priority.as_f64().unwrap_or(0.0), p.to_json()))
        .collect();
    // as RabbitMQ's list: by priority, lowest first
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    Json(all.into_iter().map(|(_, v)| v).collect::<Vec<_>>()).into_response()
}

/// RabbitMQ's `is_authorized_policies`: an administrator, or a policymaker with access
/// to the vhost.
fn policymaker(state: &BrokerState, user: &Authenticated, vhost: &str) -> Result<(), ApiError> {
    let u = &user.0;
    let allowed = u.is_administrator()
        || (u.has_tag("policymaker") && state.permissions.get(&u.name, vhost).is_some());
    if allowed {
        Ok(())
    } else {
        Err(ApiError::not_authorised(
            "User not authorised to access object",
        ))
    }
}

fn no_vhost() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: "not_found",
        reason: "vhost_not_found".into(),
    }
}

async fn list_policies(State(state): St, user: Authenticated) -> ApiResult {
    Ok(listing(&visible_vhosts(&state, &user), PolicyKind::Policy))
}

async fn list_vhost_policies(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    Ok(listing(&[v], PolicyKind::Policy))
}

async fn list_operator_policies(State(state): St, _: Admin) -> ApiResult {
    Ok(listing(&state.vhost_list(), PolicyKind::Operator))
}

async fn list_vhost_operator_policies(
    State(state): St,
    _: Admin,
    Path(vhost): Path<String>,
) -> ApiResult {
    let v = state.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    Ok(listing(&[v], PolicyKind::Operator))
}

fn one(state: &BrokerState, kind: PolicyKind, vhost: &str, name: &str) -> ApiResult {
    let p = state
        .vhost(vhost)
        .and_then(|v| v.policy(kind, name))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(p.to_json()).into_response())
}

async fn get_policy(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    policymaker(&state, &user, &vhost)?;
    one(&state, PolicyKind::Policy, &vhost, &name)
}

async fn get_operator_policy(
    State(state): St,
    _: Admin,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    one(&state, PolicyKind::Operator, &vhost, &name)
}

/// Set a policy from a request body; RabbitMQ escapes the reason for policies and not
/// for operator policies.
async fn set(
    state: &BrokerState,
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    bytes: &Bytes,
) -> ApiResult {
    let v = state.vhost(vhost).ok_or_else(no_vhost)?;
    let body = body_json(bytes)?;
    let policy = Policy::parse(kind, vhost, name, &body).map_err(|e| {
        let reason = e.reason();
        ApiError::bad_request(match kind {
            PolicyKind::Policy => escape_html_tags(&reason),
            PolicyKind::Operator => reason,
        })
    })?;
    let created = v.set_policy(kind, policy).await;
    tracing::info!(vhost = %vhost, policy = %name, "policy set");
    created_or_updated(created)
}

async fn put_policy(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    policymaker(&state, &user, &vhost)?;
    set(&state, PolicyKind::Policy, &vhost, &name, &bytes).await
}

async fn put_operator_policy(
    State(state): St,
    _: Admin,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    set(&state, PolicyKind::Operator, &vhost, &name, &bytes).await
}

async fn clear(state: &BrokerState, kind: PolicyKind, vhost: &str, name: &str) -> ApiResult {
    let v = state.vhost(vhost).ok_or_else(ApiError::not_found)?;
    if !v.clear_policy(kind, name).await {
        return Err(ApiError::not_found());
    }
    tracing::info!(vhost = %vhost, policy = %name, "policy cleared");
    no_content()
}

async fn delete_policy(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    policymaker(&state, &user, &vhost)?;
    clear(&state, PolicyKind::Policy, &vhost, &name).await
}

async fn delete_operator_policy(
    State(state): St,
    _: Admin,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    clear(&state, PolicyKind::Operator, &vhost, &name).await
}

/// `rabbit_misc:escape_html_tags`.
fn escape_html_tags(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
