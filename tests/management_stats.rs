//! What the management API's numbers say while a shop runs, field by field as RabbitMQ's
//! API names them, for the dashboards and exporters (Datadog, rabbitmq_exporter, the web
//! UI) that read them: exchanges' publishes in and out, queues' persistence and
//! consumer utilisation, vhosts' totals, and the overview's churn.

mod common;

use common::amqp::{declare, publish, wait_until};
use common::http::Api;
use common::start_with_management;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;
use warren::Config;

#[tokio::test(flavor = "multi_thread")]
async fn exchanges_count_messages_published_in_and_copies_routed_out() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for name in ["order-events", "nobody-listens"] {
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    for q in ["billing", "shipping"] {
        declare(&ch, q, FieldTable::default()).await.unwrap();
        ch.queue_bind(
            q.into(),
            "order-events".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    for _ in 0..3 {
        publish(
            &ch,
            "order-events",
            "",
            b"created",
            BasicProperties::default(),
        )
        .await;
    }
    for _ in 0..2 {
        publish(
            &ch,
            "nobody-listens",
            "",
            b"lost",
            BasicProperties::default(),
        )
        .await;
        publish(&ch, "", "billing", b"direct", BasicProperties::default()).await;
    }
    let exchange = |name: &'static str| {
        let api = &api;
        async move { api.get(&format!("/api/exchanges/%2f/{name}")).await.1 }
    };
    wait_until(|| async { exchange("order-events").await["message_stats"]["publish_out"] == 6 })
        .await;
    // three messages in, a copy to each of two queues out
    let x = exchange("order-events").await;
    assert_eq!(x["message_stats"]["publish_in"], 3);
    assert!(x["message_stats"]["publish_in_details"]["rate"].is_number());
    assert!(x["message_stats"]["publish_out_details"]["rate"].is_number());
    // unroutable: in, and no publish_out at all, as RabbitMQ shows it
    wait_until(|| async { exchange("nobody-listens").await["message_stats"]["publish_in"] == 2 })
        .await;
    assert!(exchange("nobody-listens").await["message_stats"]
        .get("publish_out")
        .is_none());
    // the default exchange counts too, under its API name
    wait_until(|| async { exchange("amq.default").await["message_stats"]["publish_out"] == 2 })
        .await;
    assert_eq!(
        exchange("amq.default").await["message_stats"]["publish_in"],
        2
    );
    // nothing published: no message_stats
    assert!(exchange("amq.topic").await.get("message_stats").is_none());
    // the list carries the same figures
    let (_, list) = api.get("/api/exchanges/%2f").await;
    let listed: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "order-events")
        .collect();
    assert_eq!(listed[0]["message_stats"]["publish_out"], 6);
    b.stop().await;
}
