//! Bindings on RabbitMQ's paths: listed per vhost, per queue and per exchange (both
//! directions), created with a `Location` whose last segment is the binding's properties
//! key, and read or deleted by that key. The default exchange's implicit binding to each
//! queue is listed as RabbitMQ lists it. Binding goes through the vhost as queue.bind does.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::json::table_to_json;
use super::objects::{
    arguments, body_json, exchange_name, from_amqp, visible_vhost, visible_vhosts, NO_CONNECTION,
};
use super::{ApiError, Authenticated};
use crate::broker::exchange::{Binding, Destination};
use crate::broker::permissions::ResourceKind;
use crate::broker::vhost::VHost;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/bindings", get(list_bindings))
        .route("/api/bindings/{vhost}", get(list_vhost_bindings))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(list_pair_bindings).post(create_binding),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(get_binding).delete(delete_binding),
        )
        .route("/api/queues/{vhost}/{name}/bindings", get(queue_bindings))
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(exchange_bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(exchange_bindings_destination),
        )
}

/// One binding as the API shows it; `source` "" is the default exchange's implicit one.
struct BindingView {
    source: String,
    destination: String,
    queue: bool,
    routing_key: String,
    arguments: amq_protocol::types::FieldTable,
}

fn views(source: &str, bindings: Vec<Binding>) -> impl Iterator<Item = BindingView> + '_ {
    bindings.into_iter().map(move |b| {
        let (destination, queue) = match &b.destination {
            Destination::Queue(q) => (q.to_string(), true),
            Destination::Exchange(x) => (x.to_string(), false),
        };
        BindingView {
            source: source.to_owned(),
            destination,
            queue,
            routing_key: b.routing_key,
            arguments: b.arguments,
        }
    })
}

/// Every binding of a vhost: the default exchange's to each queue first, then the
/// declared ones by source exchange.
fn vhost_bindings(v: &VHost) -> Vec<BindingView> {
    let mut out: Vec<BindingView> = v
        .queue_list()
        .iter()
        .map(|q| BindingView {
            source: String::new(),
            destination: q.name.to_string(),
            queue: true,
            routing_key: q.name.to_string(),
            arguments: Default::default(),
        })
        .collect();
    for x in v.exchange_list() {
        out.extend(views(&x.name, x.bindings()));
    }
    out
}

/// A binding's properties key, as the API names one binding in a path: the routing key
/// quoted, and when there are arguments a short hash of them after a `~`.
fn properties_key(b: &BindingView) -> String {
    if b.arguments.inner().is_empty() {
        if b.routing_key.is_empty() {
            return "~".into();
        }
        return quote(&b.routing_key);
    }
    let mut encoded = Vec::new();
    if let Ok((bytes, _)) = cookie_factory::gen(
        amq_protocol::types::generation::gen_field_table(&b.arguments),
        Vec::new(),
    ) {
        encoded = bytes;
    }
    // FNV-1a: stable across runs and builds, unlike the standard library's hasher
    let mut hash: u32 = 0x811c_9dc5;
    for byte in encoded {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    let digest = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        hash.to_be_bytes(),
    );
    format!("{}~{}", quote(&b.routing_key), quote(&digest))
}

/// RabbitMQ's quoting of a binding key: form-encoded, with `~` escaped too.
fn quote(s: &str) -> String {
    let mut out = String::new();
    for byte in s.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A path segment as axum hands it over (percent-decoded), for comparing with a key.
fn unquote(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn binding_json(vhost: &str, b: &BindingView) -> Value {
    json!({
        "source": b.source,
        "vhost": vhost,
        "destination": b.destination,
        "destination_type": if b.queue { "queue" } else { "exchange" },
        "routing_key": b.routing_key,
        "arguments": table_to_json(&b.arguments),
        "properties_key": properties_key(b),
    })
}

fn bindings_json(v: &VHost, keep: impl Fn(&BindingView) -> bool) -> Vec<Value> {
    vhost_bindings(v)
        .iter()
        .filter(|b| keep(b))
        .map(|b| binding_json(&v.name, b))
        .collect()
}

async fn list_bindings(State(state): St, user: Authenticated) -> ApiResult {
    let all: Vec<Value> = visible_vhosts(&state, &user)
        .iter()
        .flat_map(|v| bindings_json(v, |_| true))
        .collect();
    Ok(Json(all).into_response())
}

async fn list_vhost_bindings(
    State(state): St,
    user: Authenticated,
    Path(vhost): Path<String>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    Ok(Json(bindings_json(&v, |_| true)).into_response())
}

async fn queue_bindings(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    v.queue(&name).map_err(from_amqp)?;
    Ok(Json(bindings_json(&v, |b| b.queue && b.destination == name)).into_response())
}

async fn exchange_bindings_source(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let name = exchange_name(&name);
    if !name.is_empty() {
        v.exchange(name).map_err(from_amqp)?;
    }
    Ok(Json(bindings_json(&v, |b| b.source == name)).into_response())
}

async fn exchange_bindings_destination(
    State(state): St,
    user: Authenticated,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let name = exchange_name(&name).to_owned();
    v.exchange(&name).map_err(from_amqp)?;
    Ok(Json(bindings_json(&v, |b| !b.queue && b.destination == name)).into_response())
}

/// The user's permissions for (un)binding, as for queue.bind: the destination to bind.
fn authorize_binding(
    state: &BrokerState,
    user: &Authenticated,
    v: &VHost,
    queue: bool,
    destination: &str,
    source: &str,
    routing_key: &str,
) -> Result<Destination, ApiError> {
    let (kind, dest) = if queue {
        (ResourceKind::Queue, Destination::Queue(destination.into()))
    } else {
        (
            ResourceKind::Exchange,
            Destination::Exchange(destination.into()),
        )
    };
    let topic = v
        .exchange(source)
        .is_ok_and(|x| x.kind == crate::broker::exchange::ExchangeKind::Topic);
    state
        .permissions
        .check_binding(
            &user.0.name,
            &v.name,
            kind,
            destination,
            source,
            topic,
            routing_key,
        )
        .map_err(from_amqp)?;
    Ok(dest)
}

/// `q` or `e` in a bindings path: whether the destination is a queue.
fn destination_is_queue(kind: &str) -> Result<bool, ApiError> {
    match kind {
        "q" => Ok(true),
        "e" => Ok(false),
        _ => Err(ApiError::not_found()),
    }
}

async fn list_pair_bindings(
    State(state): St,
    user: Authenticated,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let queue = destination_is_queue(&kind)?;
    let source = exchange_name(&source).to_owned();
    Ok(Json(bindings_json(&v, |b| {
        b.source == source && b.queue == queue && b.destination == destination
    }))
    .into_response())
}

async fn create_binding(
    State(state): St,
    user: Authenticated,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let queue = destination_is_queue(&kind)?;
    let b = body_json(&bytes)?;
    let routing_key = match b.get("routing_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "routing_key must be a string, got {other}"
            )))
        }
    };
    let args = arguments(&b)?;
    let source = exchange_name(&source).to_owned();
    let dest = authorize_binding(
        &state,
        &user,
        &v,
        queue,
        &destination,
        &source,
        &routing_key,
    )?;
    v.bind(&source, dest, &routing_key, args.clone(), NO_CONNECTION)
        .await
        .map_err(from_amqp)?;
    let view = BindingView {
        source: source.clone(),
        destination: destination.clone(),
        queue,
        routing_key,
        arguments: args,
    };
    let location = format!(
        "../../../../{}/e/{}/{}/{}/{}",
        quote(&v.name),
        quote(&source),
        kind,
        quote(&destination),
        properties_key(&view)
    );
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// The binding a properties key names, from the listing of its two ends.
fn find_binding(
    v: &VHost,
    source: &str,
    queue: bool,
    destination: &str,
    props: &str,
) -> Result<BindingView, ApiError> {
    vhost_bindings(v)
        .into_iter()
        .find(|b| {
            b.source == source
                && b.queue == queue
                && b.destination == destination
                && unquote(&properties_key(b)) == props
        })
        .ok_or_else(ApiError::not_found)
}

async fn get_binding(
    State(state): St,
    user: Authenticated,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let queue = destination_is_queue(&kind)?;
    let b = find_binding(&v, exchange_name(&source), queue, &destination, &props)?;
    Ok(Json(binding_json(&v.name, &b)).into_response())
}

async fn delete_binding(
    State(state): St,
    user: Authenticated,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult {
    let v = visible_vhost(&state, &user, &vhost)?;
    let queue = destination_is_queue(&kind)?;
    let b = find_binding(&v, exchange_name(&source), queue, &destination, &props)?;
    let dest = authorize_binding(
        &state,
        &user,
        &v,
        queue,
        &destination,
        &b.source,
        &b.routing_key,
    )?;
    v.unbind(&b.source, dest, &b.routing_key, &b.arguments, NO_CONNECTION)
        .await
        .map_err(from_amqp)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
