//! The management HTTP API on RabbitMQ's paths and JSON shapes (what `warrenctl`,
//! `rabbitmqadmin` and RabbitMQ's own tooling call): users, vhosts and permissions in `api`;
//! queues and exchanges in `objects`, bindings in `bindings`, messages in `messages`, health
//! checks in `health`; the web UI's built-in pages in `ui`. It authenticates every request with HTTP basic auth against the
//! broker's users. Users and vhosts change through `BrokerState`'s admin operations (the
//! administrator tag required); queues, exchanges and bindings through the vhost, under
//! the user's AMQP permissions. It never holds a queue's state: it asks the queue's actor.

mod api;
mod bindings;
mod channels;
mod connections;
mod consumers;
mod definitions;
mod health;
mod json;
mod listing;
mod messages;
mod node;
mod objects;
mod parameters;
mod policies;
mod prometheus;
mod rated;
mod ui;
mod vhost_stats;

pub use api::GRANT_CREATOR_HEADER;
pub use definitions::import_file as import_definitions;
pub use prometheus::serve as serve_prometheus;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;
use tokio::net::TcpListener;

use crate::broker::admin::AdminError;
use crate::broker::auth::User;
use crate::broker::BrokerState;

/// Serve the API on one listener until the broker stops.
pub async fn serve(listener: TcpListener, state: Arc<BrokerState>) {
    let app = api::router(state)
        .merge(ui::routes())
        .layer(axum::middleware::from_fn(ui::no_browser_challenge));
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!("management listener stopped: {e}");
    }
}

/// An API error in RabbitMQ's JSON shape: `{"error": ..., "reason": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    reason: String,
}

impl ApiError {
    fn not_authorised(reason: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: reason.to_owned(),
        }
    }

    fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: reason.into(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NoSuchUser(_) | AdminError::NoSuchVHost(_) => Self {
                status: StatusCode::BAD_REQUEST,
                error: "bad_request",
                reason: e.to_string(),
            },
            AdminError::BadRequest(reason) => Self::bad_request(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "reason": self.reason}));
        if self.status == StatusCode::UNAUTHORIZED {
            // as RabbitMQ: lets browsers and curl prompt for credentials
            (
                self.status,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"RabbitMQ Management\"",
                )],
                body,
            )
                .into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

/// The user behind a request's basic auth: must exist, have the right password, may use
/// the management API and, for `loopback_users`, come from loopback. Failures are logged
/// with the peer and throttled like AMQP logins.
async fn authenticate(
    state: &BrokerState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<User, ApiError> {
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((name, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(ApiError::not_authorised("Login failed"));
    };
    let Some(user) = state.users.check(name, password) else {
        tracing::warn!(%peer, user = %name, "management login refused: bad credentials");
        let delay = state.login_throttle.failed(peer.ip());
        tokio::time::sleep(delay).await;
        return Err(ApiError::not_authorised("Login failed"));
    };
    if state.config.loopback_users.contains(&user.name) && !peer.ip().is_loopback() {
        return Err(ApiError::not_authorised(
            "User can only log in via localhost",
        ));
    }
    if !user.may_use_management() {
        return Err(ApiError::not_authorised("Not management user"));
    }
    Ok(user)
}

/// A request by a user allowed into the management API (any management tag).
pub struct Authenticated(pub User);

/// A request by a user with the administrator tag.
pub struct Admin(pub User);

fn peer_of(parts: &axum::http::request::Parts) -> SocketAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl axum::extract::FromRequestParts<Arc<BrokerState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<BrokerState>,
    ) -> Result<Self, ApiError> {
        let peer = peer_of(parts);
        authenticate(state, &parts.headers, peer)
            .await
            .map(Authenticated)
    }
}

impl axum::extract::FromRequestParts<Arc<BrokerState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<BrokerState>,
    ) -> Result<Self, ApiError> {
        let Authenticated(user) = Authenticated::from_request_parts(parts, state).await?;
        if !user.is_administrator() {
            return Err(ApiError::not_authorised("Not administrator user"));
        }
        Ok(Admin(user))
    }
}
