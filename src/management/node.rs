//! The broker as a whole, as RabbitMQ's overview page and `/api/nodes` show it: object and
//! queue totals, message counts with rates, listeners, memory, disk and file descriptors
//! against their limits. Warren is one node, so `/api/nodes` lists one. Read-only; figures
//! come from the queues' actors and the broker's counters when asked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::objects::node_name;
use super::rated::{counters_rated, insert_rated};
use super::{ApiError, Authenticated};
use crate::broker::alarm::{self, Reason};
use crate::broker::metrics::GlobalMetrics;
use crate::broker::queue::stats::QueueInfo;
use crate::broker::queue::QueueCmd;
use crate::broker::BrokerState;

type St = State<Arc<BrokerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/nodes", get(list_nodes))
        .route("/api/nodes/{name}", get(get_node))
}

const EXCHANGE_TYPES: [(&str, &str); 4] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
];

fn exchange_types() -> Value {
    EXCHANGE_TYPES
        .iter()
        .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
        .collect()
}

async fn queue_infos(state: &BrokerState) -> Vec<QueueInfo> {
    let mut out = Vec::new();
    for v in state.vhost_list() {
        for q in v.queue_list() {
            out.push(
                q.ask(|reply| QueueCmd::Info { reply })
                    .await
                    .unwrap_or_default(),
            );
        }
    }
    out
}

async fn overview(State(state): St, _user: Authenticated) -> ApiResult {
    let c = &state.config;
    let vhosts = state.vhost_list();
    let infos = queue_infos(&state).await;
    let ready: u64 = infos.iter().map(|i| u64::from(i.messages_ready)).sum();
    let unacked: u64 = infos
        .iter()
        .map(|i| u64::from(i.messages_unacknowledged))
        .sum();
    let consumers: u64 = infos.iter().map(|i| u64::from(i.consumers)).sum();
    let depth_rates = state
        .metrics
        .depth_rates
        .lock()
        .map(|mut sampler| sampler.rates(Instant::now(), [ready + unacked, ready, unacked]))
        .unwrap_or([0.0; 3]);
    let m = &state.metrics;
    let counts = m.message_stats();
    let rates = m
        .rates
        .lock()
        .map(|mut sampler| sampler.rates(Instant::now(), counts))
        .unwrap_or([0.0; 9]);
    let mut stats = Map::new();
    insert_rated(&mut stats, counters_rated(&counts, rates));
    insert_rated(&mut stats, m.publisher_stats());
    let node = node_name(&state);
    let listeners: Vec<Value> = state
        .listeners()
        .iter()
        .map(|(protocol, addr)| {
            json!({"node": node, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port()})
        })
        .collect();
    // RabbitMQ's web contexts: one per HTTP listener, the port as a string
    let contexts: Vec<Value> = state
        .listeners()
        .iter()
        .filter_map(|(protocol, addr)| {
            let mut context = json!({
                "ssl_opts": [],
                "node": node,
                "path": "/",
                "cowboy_opts": "[{sendfile,false}]",
                "ip": addr.ip().to_string(),
                "port": addr.port().to_string(),
            });
            match *protocol {
                "http" => context["description"] = json!("RabbitMQ Management"),
                "http/prometheus" => {
                    context["description"] = json!("RabbitMQ Prometheus");
                    context["protocol"] = json!("'http/prometheus'");
                }
                _ => return None,
            }
            Some(context)
        })
        .collect();
    let channels = m
        .channels_opened
        .get()
        .saturating_sub(m.channels_closed.get());
    Ok(Json(json!({
        "object_totals": {
            "connections": state.connections.load(Ordering::Relaxed),
            "channels": channels,
            "queues": infos.len(),
            "exchanges": vhosts.iter().map(|v| v.exchange_count() + 1).sum::<usize>(),
            "consumers": consumers,
        },
        "queue_totals": {
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
            "messages_details": {"rate": depth_rates[0]},
            "messages_ready_details": {"rate": depth_rates[1]},
            "messages_unacknowledged_details": {"rate": depth_rates[2]},
        },
        "message_stats": stats,
        "churn_rates": churn_json(m),
        "listeners": listeners,
        "contexts": contexts,
        "exchange_types": exchange_types(),
        "rates_mode": "basic",
        // Warren's own: what a soak test watches for leaks
        "warren": {
            "alive_tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            "resident_memory": alarm::resident_memory(),
            "message_bytes": crate::model::message::message_bytes(),
            "memory_alarm": state.alarm.is_raised(),
        },
        "management_version": c.product_version,
        "rabbitmq_version": c.product_version,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": state.cluster_name(),
        "node": node,
    }))
    .into_response())
}

fn node_json(state: &BrokerState) -> Value {
    let raised = state.alarm.is_raised();
    let reason = state.alarm.reason();
    let fd_total = super::prometheus::max_fds();
    let m = &state.metrics;
    let mut node = json!({
        "name": node_name(state),
        "type": "disc",
        "running": true,
        "os_pid": std::process::id().to_string(),
        "uptime": state.started.elapsed().as_millis() as u64,
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "mem_used": alarm::resident_memory(),
        "mem_limit": state.alarm.memory_limit(),
        "mem_alarm": raised && reason == Reason::Memory,
        "disk_free": alarm::free_disk(&state.config.data_dir),
        "disk_free_limit": state.alarm.disk_free_limit(),
        "disk_free_alarm": raised && reason == Reason::Disk,
        "fd_used": super::prometheus::open_fds(),
        "fd_total": fd_total,
        "sockets_used": state.connections.load(Ordering::Relaxed),
        "sockets_total": fd_total,
        "proc_used": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "partitions": [],
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "db_dir": state.config.data_dir.display().to_string(),
    });
    // connection_created, queue_deleted and the rest, each with its rate, as RabbitMQ's node
    if let Some(fields) = node.as_object_mut() {
        fields.extend(churn_json(m));
    }
    node
}

/// `connection_created`, `queue_deleted` and the rest, each with its rate.
fn churn_json(m: &GlobalMetrics) -> Map<String, Value> {
    let mut out = Map::new();
    insert_rated(
        &mut out,
        m.churn_rated().map(|(_, name, _, n, rate)| (name, n, rate)),
    );
    out
}

async fn list_nodes(State(state): St, _user: Authenticated) -> ApiResult {
    Ok(Json(json!([node_json(&state)])).into_response())
}

#[derive(serde::Deserialize)]
struct NodeQuery {
    #[serde(default)]
    memory: bool,
}

/// One node; `?memory=true` adds RabbitMQ's `memory` breakdown with what Warren can tell
/// apart: message bodies (RabbitMQ's `binary`) and the rest of the process' memory.
async fn get_node(
    State(state): St,
    _user: Authenticated,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<NodeQuery>,
) -> ApiResult {
    if name != node_name(&state) {
        return Err(ApiError::not_found());
    }
    let mut body = node_json(&state);
    if q.memory {
        // unknown on a system without /proc: the bodies are still a lower bound
        let bodies = crate::model::message::message_bytes();
        let rss = alarm::resident_memory().unwrap_or(bodies);
        body["memory"] = json!({
            "strategy": "rss",
            "total": {"rss": rss},
            "binary": bodies,
            "other_system": rss.saturating_sub(bodies),
        });
    }
    Ok(Json(body).into_response())
}
