//! The routes: /api/whoami, /api/users, /api/vhosts, /api/permissions and
//! /api/topic-permissions with RabbitMQ's methods, status codes (201 created, 204 updated
//! or deleted, 404 unknown) and JSON field names.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Admin, ApiError, Authenticated};

/// Warren's own request header: `false` creates a vhost without granting its creator
/// anything, as `rabbitmqctl add_vhost` does.
pub const GRANT_CREATOR_HEADER: &str = "x-warren-grant-creator";
use crate::broker::admin::PasswordSpec;
use crate::broker::auth::{parse_tags, User, HASHING_ALGORITHM};
use crate::broker::permissions::{Permission, TopicPermission};
use crate::broker::vhost::{VHost, VHostMeta};
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn router(state: Arc<BrokerState>) -> Router {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/users", get(list_users))
        .route(
            "/api/users/{name}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/api/users/{name}/permissions", get(user_permissions))
        .route(
            "/api/users/{name}/topic-permissions",
            get(user_topic_permissions),
        )
        .route(
            "/api/users/without-permissions",
            get(users_without_permissions),
        )
        .route("/api/extensions", get(extensions))
        .route("/api/vhosts", get(list_vhosts))
        .route(
            "/api/vhosts/{name}",
            get(get_vhost).put(put_vhost).delete(delete_vhost),
        )
        .route("/api/vhosts/{name}/permissions", get(vhost_permissions))
        .route(
            "/api/vhosts/{name}/topic-permissions",
            get(vhost_topic_permissions),
        )
        .route("/api/vhost-limits", get(list_vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(get_vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(put_vhost_limit).delete(delete_vhost_limit),
        )
        .route("/api/permissions", get(list_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(get_permission)
                .put(put_permission)
                .delete(delete_permission),
        )
        .route("/api/topic-permissions", get(list_topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(get_topic_permissions)
                .put(put_topic_permission)
                .delete(delete_topic_permissions),
        )
        .merge(super::objects::routes())
        .merge(super::policies::routes())
        .with_state(state)
}

fn tags_json(tags: &[String]) -> Value {
    json!(tags)
}

pub(super) fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": base64::engine::general_purpose::STANDARD.encode(&u.password_hash),
        "hashing_algorithm": HASHING_ALGORITHM,
        "tags": tags_json(&u.tags),
        "limits": user_limits_json(u),
    })
}

/// A user's limits as RabbitMQ shows them: `{"max-connections": 10}`.
pub(super) fn user_limits_json(u: &User) -> Value {
    Value::Object(
        u.limits
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect(),
    )
}

fn vhost_json(v: &VHost) -> Value {
    let meta = v.meta();
    json!({
        "name": v.name,
        "description": meta.description,
        "tags": tags_json(&meta.tags),
        "default_queue_type": "classic",
        "metadata": {"description": meta.description, "tags": tags_json(&meta.tags)},
        "tracing": false,
    })
}

pub(super) fn permission_json(p: &Permission) -> Value {
    json!({
        "user": p.user,
        "vhost": p.vhost,
        "configure": p.configure.source,
        "write": p.write.source,
        "read": p.read.source,
    })
}

pub(super) fn topic_json(t: &TopicPermission) -> Value {
    json!({
        "user": t.user,
        "vhost": t.vhost,
        "exchange": t.exchange,
        "write": t.write,
        "read": t.read,
    })
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

pub(super) fn created_or_updated(created: bool) -> ApiResult {
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
    .into_response())
}

pub(super) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A JSON body; an empty body is `{}` (RabbitMQ accepts PUT /api/vhosts/x without one).
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Tags arrive as a list or as one comma-separated string.
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub(super) enum Tags {
    List(Vec<String>),
    Text(String),
    #[default]
    Missing,
}

impl Tags {
    pub(super) fn into_vec(self) -> Option<Vec<String>> {
        match self {
            Tags::List(l) => Some(l.into_iter().filter(|t| !t.is_empty()).collect()),
            Tags::Text(t) => Some(parse_tags(&t)),
            Tags::Missing => None,
        }
    }
}

async fn whoami(Authenticated(user): Authenticated) -> ApiResult {
    ok(json!({"name": user.name, "tags": tags_json(&user.tags)}))
}

async fn list_users(State(state): St, _: Admin) -> ApiResult {
    ok(state.users.list().iter().map(user_json).collect())
}

async fn get_user(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    let user = state.users.get(&name).ok_or_else(ApiError::not_found)?;
    ok(user_json(&user))
}

#[derive(Deserialize)]
struct UserBody {
    password: Option<String>,
    password_hash: Option<String>,
    hashing_algorithm: Option<String>,
    #[serde(default)]
    tags: Tags,
}

async fn put_user(State(state): St, _: Admin, Path(name): Path<String>, bytes: Bytes) -> ApiResult {
    let b: UserBody = body(&bytes)?;
    if let Some(alg) = &b.hashing_algorithm {
        if alg != HASHING_ALGORITHM {
            return Err(ApiError::bad_request(format!(
                "hashing_algorithm '{alg}' is not supported, only {HASHING_ALGORITHM}"
            )));
        }
    }
    let existing = state.users.get(&name);
    let password = match (b.password, b.password_hash) {
        (Some(p), _) => PasswordSpec::Clear(p),
        (None, Some(h)) if h.is_empty() => PasswordSpec::None,
        (None, Some(h)) => PasswordSpec::Hash(
            base64::engine::general_purpose::STANDARD
                .decode(h.trim())
                .map_err(|e| ApiError::bad_request(format!("password_hash: {e}")))?,
        ),
        // an update without either keeps the user's password (or its lack of one)
        (None, None) => match &existing {
            Some(u) if u.password_hash.is_empty() => PasswordSpec::None,
            Some(u) => PasswordSpec::Hash(u.password_hash.clone()),
            None => {
                return Err(ApiError::bad_request(
                    "Must specify password or password_hash",
                ))
            }
        },
    };
    let tags = b
        .tags
        .into_vec()
        .or_else(|| existing.map(|u| u.tags))
        .unwrap_or_default();
    let created = state.put_user(&name, password, tags).await?;
    created_or_updated(created)
}

async fn delete_user(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    if state.users.get(&name).is_none() {
        return Err(ApiError::not_found());
    }
    state.delete_user(&name).await?;
    no_content()
}

async fn user_permissions(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    if state.users.get(&name).is_none() {
        return Err(ApiError::not_found());
    }
    let list = state.permissions.list(|p| p.user == name);
    ok(list.iter().map(|p| permission_json(p)).collect())
}

async fn user_topic_permissions(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    if state.users.get(&name).is_none() {
        return Err(ApiError::not_found());
    }
    let list = state.permissions.list_topic(|t| t.user == name);
    ok(list.iter().map(topic_json).collect())
}

/// Users with no permissions in any vhost (what operators clean up).
async fn users_without_permissions(State(state): St, _: Admin) -> ApiResult {
    let list: Vec<Value> = state
        .users
        .list()
        .iter()
        .filter(|u| state.permissions.list(|p| p.user == u.name).is_empty())
        .map(user_json)
        .collect();
    ok(Value::Array(list))
}

/// RabbitMQ lists its management UI's plugin extensions here; Warren has none.
async fn extensions(_: Authenticated) -> ApiResult {
    ok(json!([]))
}

async fn list_vhosts(State(state): St, Authenticated(user): Authenticated) -> ApiResult {
    // as RabbitMQ: administrators and monitors see every vhost, others the ones they
    // have permissions on
    let all = user.is_administrator() || user.has_tag("monitoring");
    let mut list = Vec::new();
    for v in state.vhost_list() {
        if all || state.permissions.get(&user.name, &v.name).is_some() {
            list.push(vhost_with_figures(&state, &v).await);
        }
    }
    ok(Value::Array(list))
}

async fn get_vhost(
    State(state): St,
    Authenticated(user): Authenticated,
    Path(name): Path<String>,
) -> ApiResult {
    let v = state.vhost(&name).ok_or_else(ApiError::not_found)?;
    if !user.is_administrator() && state.permissions.get(&user.name, &name).is_none() {
        return Err(ApiError::not_authorised("Access refused."));
    }
    ok(vhost_with_figures(&state, &v).await)
}

/// A vhost with its message and traffic figures, as `/api/vhosts` lists it.
async fn vhost_with_figures(state: &BrokerState, v: &VHost) -> Value {
    let mut out = vhost_json(v);
    if let Value::Object(fields) = &mut out {
        fields.extend(super::vhost_stats::vhost_figures(state, v).await);
        // one node, and it runs every vhost it has
        let node = super::objects::node_name(state);
        fields.insert("cluster_state".into(), json!({ node: "running" }));
    }
    out
}

#[derive(Deserialize)]
struct VHostBody {
    description: Option<String>,
    #[serde(default)]
    tags: Tags,
}

/// Creating a vhost through the API also gives its creator full permissions on it, as
/// RabbitMQ's API does (rabbitmqctl and definitions imports do not): an administrator's
/// script declares queues in the vhost it has just made without a set_permissions first.
/// warrenctl, which speaks rabbitmqctl, turns that off with `x-warren-grant-creator: false`.
async fn put_vhost(
    State(state): St,
    Admin(creator): Admin,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let grant = match headers.get(GRANT_CREATOR_HEADER).map(|v| v.to_str()) {
        None => true,
        Some(Ok("false")) => false,
        Some(Ok("true")) => true,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "{GRANT_CREATOR_HEADER} must be true or false"
            )))
        }
    };
    let b: VHostBody = body(&bytes)?;
    let old = state.vhost(&name).map(|v| v.meta()).unwrap_or_default();
    let meta = VHostMeta {
        description: b.description.unwrap_or(old.description),
        tags: b.tags.into_vec().unwrap_or(old.tags),
        limits: old.limits,
    };
    let created = state.add_vhost(&name, meta).await?;
    if created && grant {
        state
            .set_permissions(&creator.name, &name, ".*", ".*", ".*")
            .await?;
    }
    created_or_updated(created)
}

async fn delete_vhost(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    if state.vhost(&name).is_none() {
        return Err(ApiError::not_found());
    }
    state.delete_vhost(&name).await?;
    no_content()
}

async fn vhost_permissions(State(state): St, _: Admin, Path(name): Path<String>) -> ApiResult {
    if state.vhost(&name).is_none() {
        return Err(ApiError::not_found());
    }
    let list = state.permissions.list(|p| p.vhost == name);
    ok(list.iter().map(|p| permission_json(p)).collect())
}

async fn vhost_topic_permissions(
    State(state): St,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    if state.vhost(&name).is_none() {
        return Err(ApiError::not_found());
    }
    let list = state.permissions.list_topic(|t| t.vhost == name);
    ok(list.iter().map(topic_json).collect())
}

async fn list_permissions(State(state): St, _: Admin) -> ApiResult {
    let list = state.permissions.list(|_| true);
    ok(list.iter().map(|p| permission_json(p)).collect())
}

async fn get_permission(
    State(state): St,
    _: Admin,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    let p = state
        .permissions
        .get(&user, &vhost)
        .ok_or_else(ApiError::not_found)?;
    ok(permission_json(&p))
}

#[derive(Deserialize)]
struct PermissionBody {
    configure: String,
    write: String,
    read: String,
}

async fn put_permission(
    State(state): St,
    _: Admin,
    Path((vhost, user)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let b: PermissionBody = body(&bytes)?;
    let created = state
        .set_permissions(&user, &vhost, &b.configure, &b.write, &b.read)
        .await?;
    created_or_updated(created)
}

async fn delete_permission(
    State(state): St,
    _: Admin,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    if state.permissions.get(&user, &vhost).is_none() {
        return Err(ApiError::not_found());
    }
    state.clear_permissions(&user, &vhost).await?;
    no_content()
}

async fn list_topic_permissions(State(state): St, _: Admin) -> ApiResult {
    let list = state.permissions.list_topic(|_| true);
    ok(list.iter().map(topic_json).collect())
}

async fn get_topic_permissions(
    State(state): St,
    _: Admin,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    let list = state
        .permissions
        .list_topic(|t| t.user == user && t.vhost == vhost);
    if list.is_empty() {
        return Err(ApiError::not_found());
    }
    ok(list.iter().map(topic_json).collect())
}

#[derive(Deserialize)]
struct TopicBody {
    exchange: String,
    write: String,
    read: String,
}

async fn put_topic_permission(
    State(state): St,
    _: Admin,
    Path((vhost, user)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let b: TopicBody = body(&bytes)?;
    let created = !state.permissions.has_topic(&user, &vhost)
        || state
            .permissions
            .list_topic(|t| t.user == user && t.vhost == vhost && t.exchange == b.exchange)
            .is_empty();
    state
        .set_topic_permissions(TopicPermission {
            user,
            vhost,
            exchange: b.exchange,
            write: b.write,
            read: b.read,
        })
        .await?;
    created_or_updated(created)
}

async fn delete_topic_permissions(
    State(state): St,
    _: Admin,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    if !state.permissions.has_topic(&user, &vhost) {
        return Err(ApiError::not_found());
    }
    state.clear_topic_permissions(&user, &vhost, None).await?;
    no_content()
}

fn limits_json(v: &VHost) -> Value {
    json!({"vhost": v.name, "value": v.meta().limits})
}

async fn list_vhost_limits(State(state): St, _: Admin) -> ApiResult {
    let list: Vec<Value> = state
        .vhost_list()
        .iter()
        .filter(|v| !v.meta().limits.is_empty())
        .map(|v| limits_json(v))
        .collect();
    ok(Value::Array(list))
}

async fn get_vhost_limits(State(state): St, _: Admin, Path(vhost): Path<String>) -> ApiResult {
    let v = state.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    // as RabbitMQ: a list, empty when the vhost has no limits
    let list = if v.meta().limits.is_empty() {
        vec![]
    } else {
        vec![limits_json(&v)]
    };
    ok(Value::Array(list))
}

#[derive(Deserialize)]
struct LimitBody {
    value: i64,
}

async fn put_vhost_limit(
    State(state): St,
    _: Admin,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let b: LimitBody = body(&bytes)?;
    state.set_vhost_limit(&vhost, &name, Some(b.value)).await?;
    no_content()
}

async fn delete_vhost_limit(
    State(state): St,
    _: Admin,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    state.set_vhost_limit(&vhost, &name, None).await?;
    no_content()
}
