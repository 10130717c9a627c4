//! A shop's operator working with queues, exchanges, bindings and messages through the
//! management API on RabbitMQ's paths, while the shop's own AMQP clients run.

mod common;

use common::amqp::{publish, wait_until};
use common::http::Api;
use common::raw::{Raw, Tune};
use common::start_with_management;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use warren::Config;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_declares_binds_publishes_peeks_and_purges() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");

    let (status, _) = api
        .put(
            "/api/queues/%2f/orders",
            json!({"durable": true, "arguments": {"x-max-length": 100}}),
        )
        .await;
    assert_eq!(status, 201);
    // the same declaration again is fine; a different one is RabbitMQ's 400
    assert_eq!(
        api.put(
            "/api/queues/%2f/orders",
            json!({"durable": true, "arguments": {"x-max-length": 100}})
        )
        .await
        .0,
        204
    );
    let (status, body) = api
        .put("/api/queues/%2f/orders", json!({"durable": false}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["reason"],
        "inequivalent arg 'durable' for queue 'orders' in vhost '/': received 'false' but current is 'true'"
    );
    assert_eq!(
        api.put("/api/exchanges/%2f/shop", json!({"type": "topic"}))
            .await
            .0,
        201
    );

    // a binding created by POST is found again by the last segment of its Location
    let (status, _, location) = api
        .post_with_location(
            "/api/bindings/%2f/e/shop/q/orders",
            json!({"routing_key": "order.created"}),
        )
        .await;
    assert_eq!(status, 201);
    let location = location.expect("a Location header");
    assert_eq!(location, "../../../../%2F/e/shop/q/orders/order.created");
    let key = location.rsplit('/').next().unwrap();
    let (status, binding) = api
        .get(&format!("/api/bindings/%2f/e/shop/q/orders/{key}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(binding["routing_key"], "order.created");
    assert_eq!(binding["destination_type"], "queue");
    let (_, bindings) = api.get("/api/queues/%2f/orders/bindings").await;
    let sources: Vec<&str> = bindings
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["", "shop"]);

    let (status, routed) = api
        .post(
            "/api/exchanges/%2f/shop/publish",
            json!({"routing_key": "order.created", "payload": "order 1", "payload_encoding": "string",
                   "properties": {"delivery_mode": 2, "headers": {"region": "eu"}}}),
        )
        .await;
    assert_eq!((status, routed), (200, json!({"routed": true})));
    let (_, routed) = api
        .post(
            "/api/exchanges/%2f/shop/publish",
            json!({"routing_key": "nowhere", "payload": "x", "payload_encoding": "string"}),
        )
        .await;
    assert_eq!(routed, json!({"routed": false}));

    // peeking requeues: the message is still there, now redelivered
    let (status, got) = api
        .post(
            "/api/queues/%2f/orders/get",
            json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(got.as_array().unwrap().len(), 1);
    assert_eq!(got[0]["payload"], "order 1");
    assert_eq!(
        got[0]["properties"],
        json!({"delivery_mode": 2, "headers": {"region": "eu"}})
    );
    let (_, q) = api.get("/api/queues/%2f/orders").await;
    assert_eq!(q["messages"], 1);
    assert_eq!(q["arguments"], json!({"x-max-length": 100}));
    assert_eq!(q["message_stats"]["publish"], 1);
    assert_eq!(q["message_stats"]["get"], 1);
    assert_eq!(q["message_stats"]["redeliver"], 0);

    // purge, then a delete that insists on an empty queue
    assert_eq!(api.delete("/api/queues/%2f/orders/contents").await.0, 204);
    assert_eq!(
        api.delete("/api/queues/%2f/orders?if-empty=true").await.0,
        204
    );
    assert_eq!(api.get("/api/queues/%2f/orders").await.0, 404);
    assert_eq!(
        api.delete(&format!("/api/bindings/%2f/e/shop/q/orders/{key}"))
            .await
            .0,
        404
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_figures_follow_a_consumer_and_lists_page_as_rabbitmq() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for i in 0..12 {
        api.put(
            &format!("/api/queues/%2f/stock-{i:02}"),
            json!({"durable": false}),
        )
        .await;
    }
    for n in 0..3 {
        let body = format!("sku {n}");
        publish(
            &ch,
            "",
            "stock-00",
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let _consumer = ch
        .basic_consume(
            "stock-00".into(),
            "counter".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // two delivered and unacked (the prefetch), one ready
    wait_until(|| async {
        let (_, q) = api.get("/api/queues/%2f/stock-00").await;
        q["messages_unacknowledged"] == 2 && q["messages_ready"] == 1 && q["consumers"] == 1
    })
    .await;
    let (_, q) = api.get("/api/queues/%2f/stock-00").await;
    assert_eq!(q["messages"], 3);
    assert_eq!(q["message_stats"]["deliver"], 2);
    assert_eq!(q["message_bytes_unacknowledged"], 10);

    let (status, page) = api
        .get("/api/queues?page=2&page_size=5&name=stock&sort=name&columns=name,messages")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 12);
    assert_eq!(page["page_count"], 3);
    let names: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| &q["name"])
        .collect();
    assert_eq!(
        names,
        ["stock-05", "stock-06", "stock-07", "stock-08", "stock-09"]
    );
    assert_eq!(page["items"][0], json!({"name": "stock-05", "messages": 0}));
    let (_, page) = api
        .get("/api/queues/%2f?name=stock-0%5B12%5D&use_regex=true")
        .await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_and_the_aliveness_test_answer_for_a_running_broker() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    assert_eq!(
        api.get("/api/aliveness-test/%2f").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(api.get("/api/aliveness-test/nowhere").await.0, 404);
    assert_eq!(
        api.get("/api/health/checks/alarms").await,
        (200, json!({"status": "ok"}))
    );
    let port = b.addr.port();
    assert_eq!(
        api.get(&format!("/api/health/checks/port-listener/{port}"))
            .await,
        (200, json!({"status": "ok", "port": port}))
    );
    let (status, body) = api.get("/api/health/checks/port-listener/1").await;
    assert_eq!(status, 503);
    assert_eq!(body["reason"], "No active listener on port 1");

    // the pre-3.8 check that amqpstorm's healthchecks.get and older scripts still call
    let node = api.get("/api/overview").await.1["node"].clone();
    let node = node.as_str().unwrap();
    for path in [
        "/api/healthchecks/node".to_owned(),
        "/api/healthchecks/node/".to_owned(),
        format!("/api/healthchecks/node/{node}"),
    ] {
        assert_eq!(
            api.get(&path).await,
            (200, json!({"status": "ok"})),
            "{path}"
        );
    }
    assert_eq!(
        api.get("/api/healthchecks/node/rabbit@elsewhere").await,
        (
            404,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );

    // a memory alarm fails each check in RabbitMQ's words
    let alarm = b.broker.as_ref().unwrap().state().alarm.clone();
    alarm.set_memory_limit(1);
    assert_eq!(
        api.get("/api/health/checks/alarms").await,
        (
            503,
            json!({"status": "failed", "reason": "There are alarms in effect in the cluster",
                   "alarms": [{"node": node, "resource": "memory"}]})
        )
    );
    assert_eq!(
        api.get("/api/health/checks/local-alarms").await.1["reason"],
        "There are alarms in effect on the node"
    );
    assert_eq!(
        api.get("/api/healthchecks/node").await,
        (
            503,
            json!({"status": "failed",
                   "reason": format!("resource alarm(s) in effect:[{{resource_limit,memory,{node}}}]")})
        )
    );
    alarm.set_memory_limit(u64::MAX);
    assert_eq!(api.get("/api/healthchecks/node").await.0, 200);
    let (_, exchanges) = api.get("/api/exchanges/%2f").await;
    let names: Vec<&str> = exchanges
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.topic"
        ]
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_and_the_node_show_what_the_shop_is_doing() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    api.put("/api/queues/%2f/payments", json!({"durable": false}))
        .await;
    for n in 0..4 {
        let body = format!("payment {n}");
        publish(
            &ch,
            "",
            "payments",
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    wait_until(|| async {
        let (_, o) = api.get("/api/overview").await;
        o["queue_totals"]["messages_ready"] == 4
    })
    .await;
    let (_, o) = api.get("/api/overview").await;
    assert_eq!(o["object_totals"]["connections"], 1);
    assert_eq!(o["object_totals"]["channels"], 1);
    assert_eq!(o["object_totals"]["queues"], 1);
    assert_eq!(o["message_stats"]["publish"], 4);
    assert!(o["message_stats"]["publish_details"]["rate"].is_number());
    let amqp_port = b.addr.port();
    let listeners = o["listeners"].as_array().unwrap();
    assert!(listeners
        .iter()
        .any(|l| l["protocol"] == "amqp" && l["port"] == amqp_port));
    assert!(listeners.iter().any(|l| l["protocol"] == "http"));
    // the web contexts, where amqpstorm's tests and the UI find the node's HTTP listeners
    let management_port = b.management.as_deref().unwrap().rsplit(':').next().unwrap();
    let contexts = o["contexts"].as_array().unwrap();
    assert!(
        contexts
            .iter()
            .any(|c| c["description"] == "RabbitMQ Management"
                && c["port"] == management_port
                && c["node"] == o["node"]),
        "{contexts:?}"
    );

    let (status, nodes) = api.get("/api/nodes").await;
    assert_eq!(status, 200);
    let node = &nodes[0];
    assert_eq!(node["name"], o["node"]);
    assert_eq!(node["running"], true);
    assert_eq!(node["mem_alarm"], false);
    assert!(node["mem_limit"].as_u64().unwrap() > 0);
    assert!(node["fd_used"].as_u64().unwrap() > 0);
    let name = node["name"].as_str().unwrap();
    assert_eq!(api.get(&format!("/api/nodes/{name}")).await.0, 200);
    let (_, with_memory) = api.get(&format!("/api/nodes/{name}?memory=true")).await;
    let memory = &with_memory["memory"];
    assert!(memory["total"]["rss"].as_u64().unwrap() >= memory["binary"].as_u64().unwrap());
    assert_eq!(api.get("/api/nodes/rabbit@elsewhere").await.0, 404);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_a_stuck_connection_and_closes_it_with_a_reason() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let _ch1 = conn.create_channel().await.unwrap();
    let _ch2 = conn.create_channel().await.unwrap();
    let (status, list) = api.get("/api/connections").await;
    assert_eq!(status, 200);
    let c = &list[0];
    assert_eq!(c["user"], "guest");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["channels"], 2);
    assert_eq!(c["port"], b.addr.port());
    assert_eq!(c["protocol"], "AMQP 0-9-1");
    // the client's own properties, as lapin announced them
    assert_eq!(c["client_properties"]["product"], "lapin");
    assert!(c["name"]
        .as_str()
        .unwrap()
        .ends_with(&format!(" -> {}", b.addr)));
    assert_eq!(c["user_who_performed_action"], "guest");
    // lapin gave no connection_name, so RabbitMQ's field is absent rather than empty
    assert!(c.get("user_provided_name").is_none());

    // a service that names its connection is found by that name, as in RabbitMQ's UI
    let named = Connection::connect(
        &b.url,
        ConnectionProperties::default().with_connection_name("checkout-service".into()),
    )
    .await
    .unwrap();
    let (_, list) = api.get("/api/connections").await;
    let by_name: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["user_provided_name"] == "checkout-service")
        .collect();
    assert_eq!(by_name.len(), 1);
    assert_eq!(
        by_name[0]["client_properties"]["connection_name"],
        "checkout-service"
    );
    named.close(200, "bye".into()).await.unwrap();
    wait_until(|| async {
        api.get("/api/connections").await.1.as_array().map(Vec::len) == Some(1)
    })
    .await;

    // a second client, the stuck one: closed by name with the operator's reason
    let (mut stuck, _) = Raw::open(b.addr, Tune::default()).await;
    let (_, list) = api.get("/api/vhosts/%2f/connections").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let name = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_properties"]["product"] != "lapin")
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .unwrap();
    let path = format!(
        "/api/connections/{}",
        name.replace(' ', "%20").replace('>', "%3E")
    );
    assert_eq!(api.get(&path).await.0, 200);
    let (status, _) = api
        .delete_with(&path, "X-Reason", "stuck consumer, restarting")
        .await;
    assert_eq!(status, 204);
    let (code, text, _, _) = stuck.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (320, "CONNECTION_FORCED - stuck consumer, restarting")
    );
    drop(stuck);
    wait_until(|| async {
        api.get("/api/connections").await.1.as_array().map(Vec::len) == Some(1)
    })
    .await;
    assert_eq!(api.get(&path).await.0, 404);
    // the other client was not touched
    assert!(conn.status().connected());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_are_listed_with_their_channel_and_who_is_active() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    api.put(
        "/api/queues/%2f/invoices",
        json!({"durable": true, "arguments": {"x-single-active-consumer": true}}),
    )
    .await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    // held: a lapin consumer that is dropped is cancelled
    let mut held = Vec::new();
    for tag in ["first", "second"] {
        let consumer = ch
            .basic_consume(
                "invoices".into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        held.push(consumer);
    }
    let (status, consumers) = api.get("/api/consumers/%2f").await;
    assert_eq!(status, 200);
    let list = consumers.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["consumer_tag"], "first");
    assert_eq!(list[0]["active"], true);
    assert_eq!(list[1]["activity_status"], "waiting");
    assert_eq!(list[0]["prefetch_count"], 10);
    assert_eq!(list[0]["ack_required"], true);
    assert_eq!(list[0]["queue"], json!({"name": "invoices", "vhost": "/"}));
    assert_eq!(list[0]["channel_details"]["number"], 1);
    assert_eq!(list[0]["channel_details"]["user"], "guest");
    let (_, q) = api.get("/api/queues/%2f/invoices").await;
    assert_eq!(q["consumer_details"].as_array().unwrap().len(), 2);
    // depth rates are there from the first look (0 until two looks lie 5 s apart)
    assert_eq!(q["messages_details"], json!({"rate": 0.0}));
    assert!(q["messages_ready_details"]["rate"].is_number());
    assert_eq!(
        api.get("/api/consumers").await.1.as_array().unwrap().len(),
        2
    );
    b.stop().await;
}

/// An operator looks at a publisher's and a consumer's channels: confirms in flight,
/// unacknowledged deliveries, prefetch and the counts behind RabbitMQ's channel page.
#[tokio::test(flavor = "multi_thread")]
async fn channels_show_what_each_publisher_and_consumer_is_doing() {
    use futures_lite::StreamExt;
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    let consumer = conn.create_channel().await.unwrap();
    common::amqp::declare(&publisher, "orders", FieldTable::default())
        .await
        .unwrap();
    publisher.confirm_select(Default::default()).await.unwrap();
    for n in 0..3 {
        publisher
            .basic_publish(
                "".into(),
                "orders".into(),
                Default::default(),
                format!("order-{n}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    consumer
        .basic_qos(5, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = consumer
        .basic_consume(
            "orders".into(),
            "picker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        deliveries.next().await.unwrap().unwrap();
    }
    let (status, list) = api.get("/api/channels").await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let by_number = |n: u64| list.iter().find(|c| c["number"] == n).unwrap().clone();
    let (p, c) = (by_number(1), by_number(2));
    assert_eq!(p["confirm"], true);
    assert_eq!(p["message_stats"]["publish"], 3);
    assert_eq!(p["message_stats"]["confirm"], 3);
    assert_eq!(p["messages_unconfirmed"], 0);
    assert_eq!(c["consumer_count"], 1);
    assert_eq!(c["messages_unacknowledged"], 3);
    assert_eq!(c["prefetch_count"], 5);
    assert_eq!(c["message_stats"]["deliver"], 3);
    assert_eq!(c["user"], "guest");
    let connection = c["connection_details"]["name"].as_str().unwrap().to_owned();
    assert_eq!(c["name"], format!("{connection} (2)"));
    let escape = |s: &str| s.replace(' ', "%20").replace('>', "%3E");
    let (_, of_connection) = api
        .get(&format!(
            "/api/connections/{}/channels",
            escape(&connection)
        ))
        .await;
    assert_eq!(of_connection.as_array().unwrap().len(), 2);
    assert_eq!(
        api.get("/api/vhosts/%2f/channels")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let one = format!(
        "/api/channels/{}",
        escape(c["name"].as_str().unwrap())
            .replace('(', "%28")
            .replace(')', "%29")
    );
    let (status, page) = api.get(&one).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["consumer_details"][0]["consumer_tag"], "picker");
    assert_eq!(api.get("/api/channels/nonsense%20(9)").await.0, 404);
    b.stop().await;
}
