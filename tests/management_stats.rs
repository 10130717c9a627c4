//! What the management API's numbers say while a shop runs, field by field as RabbitMQ's
//! API names them, for the dashboards and exporters (Datadog, rabbitmq_exporter, the web
//! UI) that read them: exchanges' publishes in and out, queues' persistence and
//! consumer utilisation, vhosts' totals, and the overview's churn.

mod common;

use common::amqp::{declare, declare_durable, get, persistent, publish, wait_until};
use common::http::Api;
use common::start_with_management;
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
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

/// The queue as the API shows it now.
async fn queue(api: &Api, name: &str) -> Value {
    api.get(&format!("/api/queues/%2f/{name}")).await.1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_shows_what_is_persistent_in_memory_and_at_its_head() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare_durable(&ch, "orders", FieldTable::default())
        .await
        .unwrap();
    declare(&ch, "cart-events", FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let stamped = persistent().with_timestamp(1_700_000_000);
    publish(&ch, "", "orders", b"order-1", stamped.clone()).await;
    publish(&ch, "", "orders", b"order-2", persistent()).await;
    publish(&ch, "", "orders", b"note", BasicProperties::default()).await;
    // persistent messages in a transient queue are not kept on disk
    publish(&ch, "", "cart-events", b"added", stamped).await;
    ch.wait_for_confirms().await.unwrap();

    let q = queue(&api, "orders").await;
    assert_eq!(q["messages_persistent"], 2);
    assert_eq!(q["messages_ram"], 3);
    assert_eq!(q["messages_ready_ram"], 3);
    assert_eq!(q["messages_unacknowledged_ram"], 0);
    assert_eq!(q["messages_paged_out"], 0);
    assert_eq!(q["message_bytes_ram"], 7 + 7 + 4);
    assert_eq!(q["head_message_timestamp"], 1_700_000_000);
    // nobody consumes: no utilisation, no consumer tags
    assert_eq!(q["consumer_utilisation"], 0.0);
    assert_eq!(q["consumer_capacity"], 0.0);
    assert!(q["exclusive_consumer_tag"].is_null());
    assert!(q["single_active_consumer_tag"].is_null());
    let cart = queue(&api, "cart-events").await;
    assert_eq!(cart["messages_persistent"], 0);
    assert_eq!(cart["head_message_timestamp"], 1_700_000_000);

    // the head moves on: order-2 has no timestamp
    let first = get(&ch, "orders").await.unwrap();
    first.ack(Default::default()).await.unwrap();
    // basic.ack has no reply: the queue settles it after the client has moved on
    wait_until(|| async { queue(&api, "orders").await["messages_persistent"] == 1 }).await;
    let q = queue(&api, "orders").await;
    assert!(q["head_message_timestamp"].is_null());
    assert_eq!(q["messages_persistent"], 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_utilisation_falls_while_consumers_are_full_and_recovers_when_they_ack() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "payments", FieldTable::default())
        .await
        .unwrap();
    ch.basic_qos(1, Default::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "payments".into(),
            "slow-worker".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let utilisation = || async {
        queue(&api, "payments").await["consumer_utilisation"]
            .as_f64()
            .unwrap()
    };
    // a consumer waiting for work can take it at once
    assert_eq!(utilisation().await, 1.0);
    for n in 0..3 {
        publish(
            &ch,
            "",
            "payments",
            format!("p{n}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    // one unacked delivery fills its prefetch and two wait: utilisation decays
    let first = consumer.next().await.unwrap().unwrap();
    wait_until(|| async { utilisation().await < 0.8 }).await;
    let q = queue(&api, "payments").await;
    assert_eq!(q["consumer_capacity"], q["consumer_utilisation"]);
    // acking everything lets it keep up again
    first.ack(Default::default()).await.unwrap();
    for _ in 0..2 {
        let d = consumer.next().await.unwrap().unwrap();
        d.ack(Default::default()).await.unwrap();
    }
    wait_until(|| async { utilisation().await > 0.9 }).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusive_and_single_active_consumers_are_named() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "invoices", FieldTable::default())
        .await
        .unwrap();
    let mut sac = FieldTable::default();
    sac.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    declare(&ch, "ledger", sac).await.unwrap();
    // held: lapin cancels a consumer it drops
    let mut held = Vec::new();
    let exclusive = ch
        .basic_consume(
            "invoices".into(),
            "sole-reader".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    held.push(exclusive);
    for tag in ["ledger-a", "ledger-b"] {
        held.push(
            ch.basic_consume(
                "ledger".into(),
                tag.into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(
        queue(&api, "invoices").await["exclusive_consumer_tag"],
        "sole-reader"
    );
    assert!(queue(&api, "invoices").await["single_active_consumer_tag"].is_null());
    assert_eq!(
        queue(&api, "ledger").await["single_active_consumer_tag"],
        "ledger-a"
    );
    // the active one leaves: the next in line takes over
    ch.basic_cancel("ledger-a".into(), Default::default())
        .await
        .unwrap();
    assert_eq!(
        queue(&api, "ledger").await["single_active_consumer_tag"],
        "ledger-b"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_queue_past_its_memory_budget_shows_what_is_paged_out() {
    let b = start_with_management(Config {
        queue_ram_limit: 4096,
        ..Config::default()
    })
    .await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare_durable(&ch, "backlog", FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let body = vec![b'x'; 1024];
    for _ in 0..20 {
        publish(&ch, "", "backlog", &body, persistent()).await;
    }
    ch.wait_for_confirms().await.unwrap();
    let q = queue(&api, "backlog").await;
    let paged = q["messages_paged_out"].as_u64().unwrap();
    assert!(paged > 0, "{q}");
    assert_eq!(q["messages_ram"].as_u64().unwrap() + paged, 20);
    assert_eq!(q["messages_persistent"], 20);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_and_the_node_count_objects_coming_and_going() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let churn = || async { api.get("/api/overview").await.1["churn_rates"].clone() };
    let before = churn().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "stock", FieldTable::default()).await.unwrap();
    declare(&ch, "stock", FieldTable::default()).await.unwrap();
    ch.queue_declare(
        "stock".into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_delete("stock".into(), Default::default())
        .await
        .unwrap();
    ch.basic_get("stock".into(), Default::default())
        .await
        .unwrap_err();
    let after = churn().await;
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    // as RabbitMQ: a redeclare is declared again, a passive one is not
    assert_eq!(
        (
            delta("queue_declared"),
            delta("queue_created"),
            delta("queue_deleted")
        ),
        (2, 1, 1)
    );
    assert_eq!(
        (delta("connection_created"), delta("channel_created")),
        (1, 1)
    );
    assert!(after["queue_declared_details"]["rate"].is_number());
    let (_, nodes) = api.get("/api/nodes").await;
    assert_eq!(nodes[0]["queue_deleted"], after["queue_deleted"]);
    assert!(nodes[0]["channel_closed_details"]["rate"].is_number());
    // the failed basic.get closed the channel: counted, and in the overview's totals
    wait_until(|| async {
        churn().await["channel_closed"].as_u64() > before["channel_closed"].as_u64()
    })
    .await;
    let (_, overview) = api.get("/api/overview").await;
    for k in [
        "confirm",
        "return_unroutable",
        "drop_unroutable",
        "get_empty",
    ] {
        assert!(
            overview["message_stats"][format!("{k}_details")]["rate"].is_number(),
            "{k}"
        );
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vhost_totals_its_queues_messages_and_its_connections_traffic() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "orders", FieldTable::default()).await.unwrap();
    declare(&ch, "refunds", FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for q in ["orders", "orders", "refunds"] {
        publish(&ch, "", q, b"m", BasicProperties::default()).await;
    }
    publish(&ch, "", "nowhere", b"lost", BasicProperties::default()).await;
    ch.wait_for_confirms().await.unwrap();
    let taken = get(&ch, "orders").await.unwrap();
    // a deleted queue's acks still count for the vhost
    taken.ack(Default::default()).await.unwrap();
    ch.basic_get("refunds".into(), Default::default())
        .await
        .unwrap();
    ch.queue_delete("refunds".into(), Default::default())
        .await
        .unwrap();

    let vhost = || async { api.get("/api/vhosts/%2f").await.1 };
    wait_until(|| async { vhost().await["message_stats"]["ack"] == 1 }).await;
    let v = vhost().await;
    assert_eq!(v["messages"], 1);
    assert_eq!(v["messages_ready"], 1);
    assert_eq!(v["messages_unacknowledged"], 0);
    assert!(v["messages_details"]["rate"].is_number());
    let stats = &v["message_stats"];
    assert_eq!(stats["publish"], 4);
    assert_eq!(stats["confirm"], 4);
    assert_eq!(stats["drop_unroutable"], 1);
    assert_eq!(stats["get"], 2);
    assert!(stats["deliver_get_details"]["rate"].is_number());
    assert!(v["recv_oct"].as_u64().unwrap() > 0);
    assert!(v["send_oct"].as_u64().unwrap() > 0);
    assert!(v["recv_oct_details"]["rate"].is_number());
    assert_eq!(v["cluster_state"].as_object().unwrap().len(), 1);

    // traffic of a closed connection stays in the vhost's totals
    let sent_before = v["recv_oct"].as_u64().unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    wait_until(|| async {
        api.get("/api/connections").await.1.as_array().map(Vec::len) == Some(0)
    })
    .await;
    assert!(vhost().await["recv_oct"].as_u64().unwrap() >= sent_before);
    // the list shows the same figures
    let (_, list) = api.get("/api/vhosts").await;
    assert_eq!(list[0]["message_stats"]["publish"], 4);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_counts_the_unroutable_messages_it_got_back_or_lost() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for mandatory in [true, true, false] {
        ch.basic_publish(
            "amq.direct".into(),
            "no-such-route".into(),
            lapin::options::BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            b"lost?",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    ch.wait_for_confirms().await.unwrap();
    let stats = || async { api.get("/api/channels").await.1[0]["message_stats"].clone() };
    wait_until(|| async { stats().await["confirm"] == 3 }).await;
    let s = stats().await;
    assert_eq!(
        (
            s["return_unroutable"].as_u64(),
            s["drop_unroutable"].as_u64()
        ),
        (Some(2), Some(1))
    );
    for k in [
        "confirm",
        "return_unroutable",
        "drop_unroutable",
        "get_empty",
    ] {
        assert!(s[format!("{k}_details")]["rate"].is_number(), "{k}");
    }
    b.stop().await;
}
