//! Messages through the management API, as RabbitMQ's UI and `rabbitmqadmin` use it:
//! `POST /api/exchanges/VHOST/NAME/publish` (answers whether the message was routed) and
//! `POST /api/queues/VHOST/NAME/get` (takes messages and acks, requeues or rejects them as
//! `ackmode` says). Both go through the vhost and the queue actor as AMQP clients do;
//! neither is confirmed, as in RabbitMQ. Unknown property names are refused.

use std::sync::Arc;

use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPProperties};
use amq_protocol::types::ShortString;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::json::{json_to_table, table_to_json};
use super::objects::{authorize, body_json, exchange_name, from_amqp, visible_vhost};
use super::{ApiError, Authenticated};
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::queue::QueueCmd;
use crate::broker::BrokerState;
use crate::model::message::{Content, Message};
use crate::protocol::content::peek_properties;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
        .route("/api/queues/{vhost}/{name}/get", post(get_messages))
}

fn text(key: &str, v: &Value) -> Result<ShortString, ApiError> {
    v.as_str()
        .map(ShortString::from)
        .ok_or_else(|| ApiError::bad_request(format!("property {key} must be a string")))
}

fn number(key: &str, v: &Value) -> Result<u64, ApiError> {
    v.as_u64().ok_or_else(|| {
        ApiError::bad_request(format!("property {key} must be a non-negative integer"))
    })
}

/// Message properties from the JSON RabbitMQ's API takes.
fn properties_from_json(map: &Map<String, Value>) -> Result<AMQPProperties, ApiError> {
    let mut p = AMQPProperties::default();
    for (k, v) in map {
        p = match k.as_str() {
            "content_type" => p.with_content_type(text(k, v)?),
            "content_encoding" => p.with_content_encoding(text(k, v)?),
            "headers" => p.with_headers(json_to_table(v).map_err(ApiError::bad_request)?),
            "delivery_mode" => p.with_delivery_mode(number(k, v)?.min(255) as u8),
            "priority" => p.with_priority(number(k, v)?.min(255) as u8),
            "correlation_id" => p.with_correlation_id(text(k, v)?),
            "reply_to" => p.with_reply_to(text(k, v)?),
            "expiration" => p.with_expiration(text(k, v)?),
            "message_id" => p.with_message_id(text(k, v)?),
            "timestamp" => p.with_timestamp(number(k, v)?),
            "type" => p.with_type(text(k, v)?),
            "user_id" => p.with_user_id(text(k, v)?),
            "app_id" => p.with_app_id(text(k, v)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown message property '{other}'"
                )))
            }
        };
    }
    Ok(p)
}

fn properties_to_json(raw: &[u8]) -> Value {
    let mut m = Map::new();
    let Ok((_, p)) = parse_properties(raw) else {
        return Value::Object(m);
    };
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    let s = |x: &Option<ShortString>| x.as_ref().map(|v| json!(v.as_str()));
    put("content_type", s(p.content_type()));
    put("content_encoding", s(p.content_encoding()));
    put("headers", p.headers().as_ref().map(table_to_json));
    put("delivery_mode", p.delivery_mode().map(|v| json!(v)));
    put("priority", p.priority().map(|v| json!(v)));
    put("correlation_id", s(p.correlation_id()));
    put("reply_to", s(p.reply_to()));
    put("expiration", s(p.expiration()));
    put("message_id", s(p.message_id()));
    put("timestamp", p.timestamp().map(|v| json!(v)));
    put("type", s(p.kind()));
    put("user_id", s(p.user_id()));
    put("app_id", s(p.app_id()));
    Value::Object(m)
}

async fn publish(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let exchange = exchange_name(&name).to_owned();
    if !exchange.is_empty() {
        v.exchange(&exchange).map_err(from_amqp)?;
    }
    authorize(
        &state,
        &user,
        &v,
        Access::Write,
        ResourceKind::Exchange,
        &exchange,
    )?;
    let b = body_json(&bytes)?;
    let routing_key = match b.get("routing_key") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ApiError::bad_request("routing_key not specified")),
    };
    let Some(Value::String(payload)) = b.get("payload") else {
        return Err(ApiError::bad_request("payload not specified"));
    };
    let body = match b.get("payload_encoding").and_then(Value::as_str) {
        Some("string") => Bytes::from(payload.clone().into_bytes()),
        Some("base64") => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|e| ApiError::bad_request(format!("payload is not base64: {e}")))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "payload_encoding must be string or base64",
            ))
        }
    };
    let props = match b.get("properties") {
        None | Some(Value::Null) => AMQPProperties::default(),
        Some(Value::Object(m)) => properties_from_json(m)?,
        Some(_) => return Err(ApiError::bad_request("properties must be a JSON object")),
    };
    let raw = cookie_factory::gen_simple(gen_properties(&props), Vec::new())
        .map_err(|e| ApiError::bad_request(format!("properties: {e:?}")))?;
    let properties = Bytes::from(raw);
    let peek = peek_properties(&properties).map_err(from_amqp)?;
    let expiration =
        match props.expiration() {
            None => None,
            Some(e) => Some(e.as_str().parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid expiration '{}'", e.as_str()))
            })?),
        };
    let message = Arc::new(Message {
        content: Content::new(properties, body),
        persistent: peek.persistent(),
        priority: peek.priority.unwrap_or(0),
        expiration,
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        store_id: crate::model::message::next_store_id(),
    });
    state
        .alarm
        .note_messages(crate::model::message::message_bytes());
    // counted as RabbitMQ counts the API's publishes, which go through an internal channel
    let metrics = &state.metrics;
    v.count_published();
    if let Some(delay) = v.delay_for(&message) {
        // as with the plugin, a delayed message is not routed yet
        v.count_held_back(&message);
        v.hold_back(&message, delay, None).await;
        return Ok(Json(json!({"routed": false})).into_response());
    }
    let targets = v.route_publish(&message);
    if targets.is_empty() {
        v.count_unroutable(false);
    } else {
        metrics.messages_routed.inc();
    }
    for q in &targets {
        q.send(QueueCmd::Publish {
            message: message.clone(),
            confirm: None,
        })
        .await;
    }
    Ok(Json(json!({"routed": !targets.is_empty()})).into_response())
}

async fn get_messages(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let q = v.queue(&name).map_err(from_amqp)?;
    authorize(&state, &user, &v, Access::Read, ResourceKind::Queue, &name)?;
    let q = v
        .queue_for(&q.name, super::objects::NO_CONNECTION)
        .map_err(from_amqp)?;
    let b = body_json(&bytes)?;
    let count = b.get("count").and_then(Value::as_u64).unwrap_or(1);
    let ackmode = b
        .get("ackmode")
        .and_then(Value::as_str)
        .unwrap_or("ack_requeue_true");
    let settle = match ackmode {
        "ack_requeue_true" | "reject_requeue_true" => QueueCmd::Requeue,
        "ack_requeue_false" => QueueCmd::Ack,
        "reject_requeue_false" => QueueCmd::Reject,
        other => return Err(ApiError::bad_request(format!("unknown ackmode {other}"))),
    };
    let base64_only = match b.get("encoding").and_then(Value::as_str).unwrap_or("auto") {
        "auto" => false,
        "base64" => true,
        other => return Err(ApiError::bad_request(format!("unknown encoding {other}"))),
    };
    let truncate = b
        .get("truncate")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count {
        let got = q
            .ask(|reply| QueueCmd::Get {
                no_ack: false,
                reply,
            })
            .await
            .flatten();
        let Some((m, remaining)) = got else { break };
        let body = m.message.body();
        let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
        let (payload, encoding) = match std::str::from_utf8(shown) {
            Ok(s) if !base64_only => (s.to_owned(), "string"),
            _ => (
                base64::engine::general_purpose::STANDARD.encode(shown),
                "base64",
            ),
        };
        out.push(json!({
            "payload_bytes": body.len(),
            "redelivered": m.redelivered,
            "exchange": m.message.exchange.as_ref(),
            "routing_key": m.message.routing_key.as_ref(),
            "message_count": remaining,
            "properties": properties_to_json(m.message.properties()),
            "payload": payload,
            "payload_encoding": encoding,
        }));
        taken.push(m.id);
    }
    // settled together at the end, so a requeued message is not taken twice
    if !taken.is_empty() {
        q.send(settle(taken.into())).await;
    }
    Ok(Json(out).into_response())
}
