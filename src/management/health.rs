//! The aliveness test and the health checks RabbitMQ's management API offers
//! (`/api/health/checks/*`), answering 200 `{"status":"ok"}` or 503 with the reason, as
//! container healthchecks and load balancers expect.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::objects::{from_amqp, node_name, visible_vhost, NO_CONNECTION};
use super::{ApiError, Authenticated};
use crate::broker::queue::QueueCmd;
use crate::broker::vhost::QueueSpec;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/aliveness-test/{vhost}", get(aliveness_test))
        .route("/api/health/checks/alarms", get(health_alarms))
        .route("/api/health/checks/local-alarms", get(health_alarms))
        .route("/api/health/checks/virtual-hosts", get(health_ok))
        .route("/api/health/checks/node-is-quorum-critical", get(health_ok))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(health_port_listener),
        )
}

/// RabbitMQ's aliveness test: a message goes through a queue named `aliveness-test` in the
/// vhost and comes back.
async fn aliveness_test(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let spec = QueueSpec {
        name: "aliveness-test".into(),
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
    };
    let (q, _) = v
        .declare_queue(spec, NO_CONNECTION)
        .await
        .map_err(from_amqp)?;
    let record = crate::model::message::MessageRecord {
        exchange: String::new(),
        routing_key: "aliveness-test".into(),
        // no property flags set
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(b"test_message"),
    };
    let message = Arc::new(crate::model::message::Message::from_record(
        crate::model::message::next_store_id(),
        record,
    ));
    q.send(QueueCmd::Publish {
        message,
        confirm: None,
    })
    .await;
    let got = q
        .ask(|reply| QueueCmd::Get {
            no_ack: true,
            reply,
        })
        .await
        .flatten();
    match got {
        Some((m, _)) if m.message.body.as_ref() == b"test_message" => {
            Ok(Json(json!({"status": "ok"})).into_response())
        }
        _ => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": "the test message did not come back"})),
        )
            .into_response()),
    }
}

fn health_failed(reason: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "failed", "reason": reason})),
    )
        .into_response()
}

async fn health_alarms(State(state): St, _: Authenticated) -> ApiResult {
    if state.alarm.is_raised() {
        let resource = match state.alarm.reason() {
            crate::broker::alarm::Reason::Memory => "memory",
            crate::broker::alarm::Reason::Disk => "disk",
        };
        return Ok(health_failed(format!(
            "resource alarm(s) in effect: {resource} on node {}",
            node_name(&state)
        )));
    }
    Ok(Json(json!({"status": "ok"})).into_response())
}

/// Virtual hosts are all served by this process and quorum queues have no replicas to
/// lose on one node: these checks pass whenever the node answers, as on a RabbitMQ node
/// without a cluster.
async fn health_ok(_: Authenticated) -> ApiResult {
    Ok(Json(json!({"status": "ok"})).into_response())
}

async fn health_port_listener(
    State(state): St,
    _: Authenticated,
    Path(port): Path<String>,
) -> ApiResult {
    let Ok(port) = port.parse::<u16>() else {
        return Err(ApiError::bad_request(format!("invalid port: {port}")));
    };
    let listening = state.listeners().iter().any(|(_, a)| a.port() == port);
    if listening {
        Ok(Json(json!({"status": "ok", "port": port})).into_response())
    } else {
        Ok(health_failed(format!("No active listener on port {port}")))
    }
}
