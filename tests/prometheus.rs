//! A shop's Grafana dashboard, built on RabbitMQ's Prometheus metrics, watching a
//! publisher with confirms and a consumer that acks.

mod common;

use common::amqp::{declare, publish, wait_until};
use common::start_with_management;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren::Config;

/// One scrape as text.
async fn scrape(url: &str) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut r = ureq::get(&url).call().expect("metrics answer");
        assert!(r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/openmetrics-text")));
        r.body_mut().read_to_string().expect("metrics text")
    })
    .await
    .unwrap()
}

/// The value of the sample with exactly this name and label text (`""` for none).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_follows_a_confirmed_publisher_and_an_acking_consumer() {
    let b = start_with_management(Config::default()).await;
    let metrics = format!("{}/metrics", b.prometheus.as_deref().unwrap());
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "orders", FieldTable::default()).await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for n in 0..3 {
        let body = format!("order {n}");
        publish(
            &ch,
            "",
            "orders",
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    ch.wait_for_confirms().await.unwrap();
    publish(
        &ch,
        "amq.direct",
        "nowhere",
        b"lost",
        BasicProperties::default(),
    )
    .await;
    ch.wait_for_confirms().await.unwrap();

    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consumer_ch
        .basic_consume(
            "orders".into(),
            "dashboard".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let d = consumer.next().await.unwrap().unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
    }

    let amqp = r#"{protocol="amqp091"}"#;
    let url = metrics.clone();
    wait_until(|| {
        let url = url.clone();
        async move {
            let text = scrape(&url).await;
            sample(
                &text,
                &format!("rabbitmq_global_messages_acknowledged_total{amqp}"),
            ) == Some(2.0)
        }
    })
    .await;
    let text = scrape(&metrics).await;
    let at =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    assert_eq!(
        at(&format!("rabbitmq_global_messages_received_total{amqp}")),
        4.0
    );
    assert_eq!(
        at(&format!(
            "rabbitmq_global_messages_received_confirm_total{amqp}"
        )),
        4.0
    );
    assert_eq!(
        at(&format!("rabbitmq_global_messages_confirmed_total{amqp}")),
        4.0
    );
    assert_eq!(
        at(&format!("rabbitmq_global_messages_routed_total{amqp}")),
        3.0
    );
    assert_eq!(
        at(&format!(
            "rabbitmq_global_messages_unroutable_dropped_total{amqp}"
        )),
        1.0
    );
    // the third message waits for prefetch room behind two acked ones
    assert!(
        at(&format!(
            "rabbitmq_global_messages_delivered_consume_manual_ack_total{amqp}"
        )) >= 2.0
    );
    assert_eq!(at("rabbitmq_connections"), 1.0);
    assert_eq!(at("rabbitmq_channels"), 2.0);
    assert_eq!(at("rabbitmq_queues"), 1.0);
    assert_eq!(at("rabbitmq_consumers"), 1.0);
    assert_eq!(at("rabbitmq_queue_messages"), 1.0);
    assert!(at("rabbitmq_process_resident_memory_bytes") > 0.0);
    assert!(at("rabbitmq_resident_memory_limit_bytes") > 0.0);
    assert!(text.contains("rabbitmq_identity_info{"));
    assert!(text.trim_end().ends_with("# EOF"));

    let per_object = scrape(&format!("{metrics}/per-object")).await;
    let orders = r#"{vhost="/",queue="orders"}"#;
    assert_eq!(
        sample(&per_object, &format!("rabbitmq_queue_consumers{orders}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&per_object, &format!("rabbitmq_queue_messages{orders}")),
        Some(1.0)
    );
    conn.close(200, "bye".into()).await.unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_queue_series_show_persistence_memory_and_consumer_capacity_and_queue_churn_is_counted()
{
    let b = start_with_management(Config::default()).await;
    let base = b.prometheus.as_deref().unwrap().to_owned();
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("invoices".into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let stamped = BasicProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(1_700_000_000);
    publish(&ch, "", "invoices", b"inv-1", stamped).await;
    publish(&ch, "", "invoices", b"inv-2", BasicProperties::default()).await;
    ch.wait_for_confirms().await.unwrap();
    declare(&ch, "scratch", FieldTable::default())
        .await
        .unwrap();
    ch.queue_delete("scratch".into(), Default::default())
        .await
        .unwrap();

    let text = scrape(&format!("{base}/metrics/per-object")).await;
    let q = |name: &str| sample(&text, &format!("{name}{{vhost=\"/\",queue=\"invoices\"}}"));
    assert_eq!(q("rabbitmq_queue_messages_persistent"), Some(1.0));
    assert_eq!(q("rabbitmq_queue_messages_ram"), Some(2.0));
    assert_eq!(q("rabbitmq_queue_messages_ready_ram"), Some(2.0));
    assert_eq!(q("rabbitmq_queue_messages_paged_out"), Some(0.0));
    assert_eq!(
        q("rabbitmq_queue_head_message_timestamp"),
        Some(1_700_000_000.0)
    );
    // nobody consumes: no capacity used
    assert_eq!(q("rabbitmq_queue_consumer_capacity"), Some(0.0));
    assert_eq!(q("rabbitmq_queue_consumer_utilisation"), Some(0.0));

    let text = scrape(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&text, "rabbitmq_queue_messages_persistent"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "rabbitmq_queues_declared_total"), Some(2.0));
    assert_eq!(sample(&text, "rabbitmq_queues_created_total"), Some(2.0));
    assert_eq!(sample(&text, "rabbitmq_queues_deleted_total"), Some(1.0));
    b.stop().await;
}
