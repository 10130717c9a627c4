//! The aliveness test and the health checks RabbitMQ's management API offers
//! (`/api/health/checks/*`, and 3.x's older `/api/healthchecks/node`), answering 200
//! `{"status":"ok"}` or 503 with the reason, as container healthchecks and load balancers
//! expect.

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
use crate::broker::alarm::Reason;
use crate::broker::queue::QueueCmd;
use crate::broker::vhost::QueueSpec;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/aliveness-test/{vhost}", get(aliveness_test))
        .route("/api/health/checks/alarms", get(health_alarms))
        .route("/api/health/checks/local-alarms", get(health_local_alarms))
        // RabbitMQ's route is `/healthchecks/node/[:node]`: the bare form with its slash too
        .route("/api/healthchecks/node", get(legacy_node_check))
        .route("/api/healthchecks/node/", get(legacy_node_check))
        .route(
            "/api/healthchecks/node/{node}",
            get(legacy_named_node_check),
        )
        .route("/api/health/checks/virtual-hosts", get(health_ok))
        .route("/api/health/checks/node-is-quorum-critical", get(health_ok))
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(health_single_node),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(health_protocol_listener),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(health_certificate_expiration),
        )
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
        Some((m, _)) if m.message.body() == b"test_message" => {
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

/// `/api/health/checks/alarms` and `local-alarms`: RabbitMQ lists each alarm with its node
/// and says where they are in effect (on a single node the two checks agree but for that).
async fn health_alarms(State(state): St, _: Authenticated) -> ApiResult {
    alarms_check(&state, "in the cluster")
}

async fn health_local_alarms(State(state): St, _: Authenticated) -> ApiResult {
    alarms_check(&state, "on the node")
}

fn alarms_check(state: &BrokerState, scope: &str) -> ApiResult {
    let raised = state.alarm.in_effect();
    if raised.is_empty() {
        return Ok(Json(json!({"status": "ok"})).into_response());
    }
    let node = node_name(state);
    let alarms: Vec<_> = raised
        .iter()
        .map(|r| {
            let resource = match r {
                Reason::Memory => "memory",
                Reason::Disk => "disk space",
            };
            json!({"node": node, "resource": resource})
        })
        .collect();
    Ok((
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": "failed",
            "reason": format!("There are alarms in effect {scope}"),
            "alarms": alarms,
        })),
    )
        .into_response())
}

/// The health check RabbitMQ 3.x kept from before `/api/health/checks/` (amqpstorm's
/// `healthchecks.get`, older monitoring scripts): the node answers and has no alarm in
/// effect; the reason names the alarms in RabbitMQ's Erlang terms.
async fn legacy_node_check(State(state): St, _: Authenticated) -> ApiResult {
    node_check(&state)
}

async fn legacy_named_node_check(
    State(state): St,
    _: Authenticated,
    Path(node): Path<String>,
) -> ApiResult {
    if node != node_name(&state) {
        return Err(ApiError::not_found());
    }
    node_check(&state)
}

fn node_check(state: &BrokerState) -> ApiResult {
    let raised = state.alarm.in_effect();
    if raised.is_empty() {
        return Ok(Json(json!({"status": "ok"})).into_response());
    }
    let node = node_name(state);
    let terms: Vec<String> = raised
        .iter()
        .map(|r| {
            let resource = match r {
                Reason::Memory => "memory",
                Reason::Disk => "disk",
            };
            format!("{{resource_limit,{resource},{node}}}")
        })
        .collect();
    Ok(health_failed(format!(
        "resource alarm(s) in effect:[{}]",
        terms.join(",")
    )))
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

/// Warren has no mirrored queues and no cluster: RabbitMQ answers a single node so too.
async fn health_single_node(_: Authenticated) -> ApiResult {
    Ok(Json(json!({"status": "ok", "reason": "single node cluster"})).into_response())
}

/// RabbitMQ's names for a protocol, onto the listener names `BrokerState::listeners` uses.
fn listener_protocol(name: &str) -> &str {
    match name {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" | "amqp" => "amqp",
        "amqps" | "amqp091/ssl" | "amqp/ssl" => "amqp/ssl",
        "https" | "http/ssl" => "https",
        "prometheus" | "http/prometheus" => "http/prometheus",
        other => other,
    }
}

async fn health_protocol_listener(
    State(state): St,
    _: Authenticated,
    Path(protocol): Path<String>,
) -> ApiResult {
    let wanted = listener_protocol(&protocol.to_ascii_lowercase()).to_owned();
    let mut protocols: Vec<&str> = Vec::new();
    for (p, _) in state.listeners() {
        if !protocols.contains(p) {
            protocols.push(p);
        }
    }
    if protocols.contains(&wanted.as_str()) {
        return Ok(Json(json!({"status": "ok", "protocol": wanted})).into_response());
    }
    Ok((
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": "failed",
            "reason": "No active listener",
            "missing": wanted,
            "protocols": protocols,
        })),
    )
        .into_response())
}

/// Seconds in RabbitMQ's expiration units (a month is 30 days, a year 365).
fn expiration_window(within: &str, unit: &str) -> Result<u64, ApiError> {
    let n: u64 = within
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid expiration value."))?;
    let unit_seconds: u64 = match unit {
        "days" => 86_400,
        "weeks" => 7 * 86_400,
        "months" => 30 * 86_400,
        "years" => 365 * 86_400,
        _ => {
            return Err(ApiError::bad_request(
                "Time unit not recognised. Supported units: days, weeks, months, years.",
            ))
        }
    };
    Ok(n.saturating_mul(unit_seconds))
}

/// The notAfter of every certificate in a PEM file: Unix seconds and as printed.
fn expiry_times(path: &std::path::Path) -> Vec<(i64, String)> {
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    x509_parser::pem::Pem::iter_from_buffer(&pem)
        .filter_map(Result::ok)
        .filter_map(|p| {
            let (_, cert) = x509_parser::parse_x509_certificate(&p.contents).ok()?;
            let not_after = cert.validity().not_after;
            Some((not_after.timestamp(), not_after.to_string()))
        })
        .collect()
}

/// Fails when a certificate (or CA certificate) of a TLS listener expires within the window,
/// listing the listeners with their certificates' expiry dates as RabbitMQ does.
async fn health_certificate_expiration(
    State(state): St,
    _: Authenticated,
    Path((within, unit)): Path<(String, String)>,
) -> ApiResult {
    let window = expiration_window(&within, &unit)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let deadline = now.saturating_add(window as i64);
    let config = &state.config;
    let mut expired = Vec::new();
    for (protocol, addr) in state.listeners().iter().filter(|(p, _)| *p == "amqp/ssl") {
        let certs = config
            .tls_cert
            .as_deref()
            .map(expiry_times)
            .unwrap_or_default();
        let cas = config
            .tls_ca
            .as_deref()
            .map(expiry_times)
            .unwrap_or_default();
        if certs.iter().chain(&cas).any(|(t, _)| *t < deadline) {
            expired.push(json!({
                "node": node_name(&state),
                "protocol": protocol,
                "interface": addr.ip().to_string(),
                "port": addr.port(),
                "certfile": config.tls_cert.as_ref().map(|p| p.display().to_string()),
                "cacertfile": config.tls_ca.as_ref().map(|p| p.display().to_string()),
                "certfile_expires_on": certs.iter().map(|(_, s)| s).collect::<Vec<_>>(),
                "cacertfile_expires_on": cas.iter().map(|(_, s)| s).collect::<Vec<_>>(),
            }));
        }
    }
    if expired.is_empty() {
        return Ok(Json(json!({"status": "ok"})).into_response());
    }
    Ok((
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "failed", "reason": "Certificates expiring", "expired": expired})),
    )
        .into_response())
}
