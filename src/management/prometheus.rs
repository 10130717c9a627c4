//! Prometheus metrics under RabbitMQ's names and labels, on RabbitMQ's separate port
//! (`prometheus.tcp.port`, 15692): `/metrics` aggregated (queue figures summed, as
//! RabbitMQ's default) and `/metrics/per-object` with a series per queue, so RabbitMQ's
//! Grafana dashboards work unchanged. A scrape asks each queue's actor for its figures,
//! then encodes one snapshot with the `prometheus-client` crate (OpenMetrics text). No
//! authentication, as RabbitMQ's endpoint. Nothing is sampled between scrapes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::broker::alarm;
use crate::broker::queue::stats::QueueInfo;
use crate::broker::queue::QueueCmd;
use crate::broker::BrokerState;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve the metrics on one listener until the broker stops.
pub async fn serve(listener: TcpListener, state: Arc<BrokerState>) {
    let app = Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .with_state(state);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!("prometheus listener stopped: {e}");
    }
}

async fn aggregated(State(state): State<Arc<BrokerState>>) -> Response {
    scrape(&state, false).await
}

async fn per_object(State(state): State<Arc<BrokerState>>) -> Response {
    scrape(&state, true).await
}

async fn scrape(state: &BrokerState, per_object: bool) -> Response {
    let snapshot = Snapshot::take(state, per_object).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response(),
    }
}

/// Everything one scrape reports, gathered before encoding (encoding cannot await).
#[derive(Debug)]
struct Snapshot {
    per_object: bool,
    node: String,
    cluster: String,
    version: String,
    queues: Vec<(String, String, QueueInfo)>,
    connections: i64,
    messages: [(&'static str, &'static str, u64); 13],
    messages_delivered: u64,
    churn: [(&'static str, &'static str, &'static str, u64); 7],
    resident_memory: Option<u64>,
    memory_limit: u64,
    disk_free: Option<u64>,
    disk_free_limit: u64,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    uptime_seconds: f64,
}

pub(super) fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

pub(super) fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some(limit.rlim_cur)
}

impl Snapshot {
    async fn take(state: &BrokerState, per_object: bool) -> Snapshot {
        let mut queues = Vec::new();
        for v in state.vhost_list() {
            for q in v.queue_list() {
                let info = q
                    .ask(|reply| QueueCmd::Info { reply })
                    .await
                    .unwrap_or_default();
                queues.push((v.name.clone(), q.name.to_string(), info));
            }
        }
        let m = &state.metrics;
        Snapshot {
            per_object,
            node: super::objects::node_name(state),
            cluster: state.cluster_name(),
            version: state.config.product_version.clone(),
            queues,
            connections: state.connections.load(std::sync::atomic::Ordering::Relaxed) as i64,
            messages: m.messages(),
            messages_delivered: m.messages_delivered(),
            churn: m.churn(),
            resident_memory: alarm::resident_memory(),
            memory_limit: state.alarm.memory_limit(),
            disk_free: alarm::free_disk(&state.config.data_dir),
            disk_free_limit: state.alarm.disk_free_limit(),
            open_fds: open_fds(),
            max_fds: max_fds(),
            uptime_seconds: state.started.elapsed().as_secs_f64(),
        }
    }

    /// One per-queue gauge: a series per queue per object, else their sum.
    fn queue_gauge(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&QueueInfo) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
        if self.per_object {
            for (vhost, queue, info) in &self.queues {
                let labels = [("vhost", vhost.as_str()), ("queue", queue.as_str())];
                ConstGauge::new(value(info) as i64).encode(family.encode_family(&labels)?)?;
            }
            Ok(())
        } else {
            let sum: u64 = self.queues.iter().map(|(_, _, i)| value(i)).sum();
            ConstGauge::new(sum as i64).encode(family)
        }
    }

    /// Consumer utilisation, a share per queue: per object, each queue's; aggregated
    /// (`sum_when_aggregated`), their sum, as RabbitMQ's aggregated endpoint reports it.
    fn queue_ratio(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        sum_when_aggregated: bool,
    ) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(0f64);
        let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
        if self.per_object {
            for (vhost, queue, info) in &self.queues {
                let labels = [("vhost", vhost.as_str()), ("queue", queue.as_str())];
                ConstGauge::new(info.consumer_utilisation)
                    .encode(family.encode_family(&labels)?)?;
            }
            Ok(())
        } else if sum_when_aggregated {
            let sum: f64 = self
                .queues
                .iter()
                .map(|(_, _, i)| i.consumer_utilisation)
                .sum();
            ConstGauge::new(sum).encode(family)
        } else {
            Ok(())
        }
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let identity = Info::new(vec![
            ("rabbitmq_node", self.node.clone()),
            ("rabbitmq_cluster", self.cluster.clone()),
            (
                "rabbitmq_cluster_permanent_id",
                format!("warren-cluster-id-{}", self.cluster),
            ),
        ]);
        identity.encode(e.encode_descriptor(
            "rabbitmq_identity",
            "RabbitMQ node & cluster identity info",
            None,
            identity.metric_type(),
        )?)?;
        let build = Info::new(vec![
            ("rabbitmq_version", self.version.clone()),
            ("product_name", "Warren".to_owned()),
            ("product_version", env!("CARGO_PKG_VERSION").to_owned()),
        ]);
        build.encode(e.encode_descriptor(
            "rabbitmq_build",
            "RabbitMQ & Erlang/OTP version info",
            None,
            build.metric_type(),
        )?)?;

        gauge(
            e,
            "rabbitmq_connections",
            "Connections currently open",
            self.connections,
        )?;
        let [_, _, (.., opened), (.., closed), ..] = self.churn;
        gauge(
            e,
            "rabbitmq_channels",
            "Channels currently open",
            opened.saturating_sub(closed) as i64,
        )?;
        gauge(
            e,
            "rabbitmq_queues",
            "Queues available",
            self.queues.len() as i64,
        )?;
        let consumers: u64 = self
            .queues
            .iter()
            .map(|(_, _, i)| u64::from(i.consumers))
            .sum();
        gauge(
            e,
            "rabbitmq_consumers",
            "Consumers currently connected",
            consumers as i64,
        )?;
        for (name, _, help, v) in self.churn {
            counter(e, &format!("rabbitmq_{name}"), help, v)?;
        }

        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_ready",
            "Messages ready to be delivered to consumers",
            |i| u64::from(i.messages_ready),
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            |i| u64::from(i.messages_unacknowledged),
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages",
            "Sum of ready and unacknowledged messages - total queue depth",
            |i| u64::from(i.messages_ready + i.messages_unacknowledged),
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_ready_bytes",
            "Size in bytes of ready messages",
            |i| i.message_bytes_ready,
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_unacked_bytes",
            "Size in bytes of all unacknowledged messages",
            |i| i.message_bytes_unacknowledged,
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_bytes",
            "Size in bytes of ready and unacknowledged messages",
            |i| i.message_bytes_ready + i.message_bytes_unacknowledged,
        )?;
        self.queue_gauge(e, "rabbitmq_queue_consumers", "Consumers on a queue", |i| {
            u64::from(i.consumers)
        })?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_ram",
            "Ready and unacknowledged messages stored in memory",
            |i| u64::from(i.messages_ready + i.messages_unacknowledged - i.messages_paged_out),
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_ram_bytes",
            "Size of ready and unacknowledged messages stored in memory",
            |i| i.message_bytes_ready + i.message_bytes_unacknowledged,
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_persistent",
            "Persistent messages",
            |i| u64::from(i.messages_persistent),
        )?;
        self.queue_gauge(
            e,
            "rabbitmq_queue_messages_paged_out",
            "Messages paged out to disk",
            |i| u64::from(i.messages_paged_out),
        )?;
        self.queue_ratio(
            e,
            "rabbitmq_queue_consumer_utilisation",
            "Same as consumer capacity",
            true,
        )?;
        if self.per_object {
            self.queue_ratio(
                e,
                "rabbitmq_queue_consumer_capacity",
                "Consumer capacity",
                false,
            )?;
            self.queue_gauge(
                e,
                "rabbitmq_queue_messages_ready_ram",
                "Ready messages stored in memory",
                |i| u64::from(i.messages_ready - i.messages_paged_out),
            )?;
            self.queue_gauge(
                e,
                "rabbitmq_queue_messages_unacked_ram",
                "Unacknowledged messages stored in memory",
                |i| u64::from(i.messages_unacknowledged),
            )?;
            self.queue_gauge(
                e,
                "rabbitmq_queue_head_message_timestamp",
                "Timestamp of the first message in the queue, if any",
                |i| i.head_message_timestamp.unwrap_or(0),
            )?;
        }

        for (name, help, v) in self.messages {
            let c = ConstCounter::new(v);
            let full = format!("rabbitmq_global_{name}");
            let mut family = e.encode_descriptor(&full, help, None, c.metric_type())?;
            c.encode(family.encode_family(&[("protocol", "amqp091")])?)?;
        }
        let delivered = ConstCounter::new(self.messages_delivered);
        let mut family = e.encode_descriptor(
            "rabbitmq_global_messages_delivered",
            "Total number of messages delivered to consumers",
            None,
            delivered.metric_type(),
        )?;
        delivered.encode(family.encode_family(&[("protocol", "amqp091")])?)?;

        if let Some(rss) = self.resident_memory {
            gauge(
                e,
                "rabbitmq_process_resident_memory_bytes",
                "Memory used in bytes",
                rss as i64,
            )?;
        }
        gauge(
            e,
            "rabbitmq_resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            self.memory_limit as i64,
        )?;
        if let Some(free) = self.disk_free {
            gauge(
                e,
                "rabbitmq_disk_space_available_bytes",
                "Disk space available in bytes",
                free as i64,
            )?;
        }
        gauge(
            e,
            "rabbitmq_disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            self.disk_free_limit as i64,
        )?;
        if let Some(fds) = self.open_fds {
            gauge(
                e,
                "rabbitmq_process_open_fds",
                "Open file descriptors",
                fds as i64,
            )?;
        }
        if let Some(fds) = self.max_fds {
            gauge(
                e,
                "rabbitmq_process_max_fds",
                "Open file descriptors limit",
                fds as i64,
            )?;
        }
        let uptime = ConstGauge::new(self.uptime_seconds);
        uptime.encode(e.encode_descriptor(
            "rabbitmq_erlang_uptime_seconds",
            "Node uptime",
            None,
            uptime.metric_type(),
        )?)?;
        Ok(())
    }
}
