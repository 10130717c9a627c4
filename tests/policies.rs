//! A shop's operator governs queues with policies instead of touching the services'
//! declarations: caps on order queues, TTL and dead-lettering for payment retries, an
//! alternate exchange for unroutable events, an operator policy capping everything. The
//! policies apply to existing queues at once, combine with the services' own arguments as
//! RabbitMQ combines them, survive a restart and are refused with RabbitMQ's texts.

mod common;

use common::amqp::{
    args, bind, declare, declare_durable, drain_bodies, publish, text, wait_for_message, wait_until,
};
use common::http::Api;
use common::{start_with_management, within};
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use serde_json::{json, Value};
use warren::Config;

fn admin(b: &common::TestBroker) -> Api {
    Api::new(
        b.management.as_deref().expect("management"),
        "guest",
        "guest",
    )
}

async fn queue_json(api: &Api, name: &str) -> Value {
    let (status, q) = api.get(&format!("/api/queues/%2f/{name}")).await;
    assert_eq!(status, 200, "{q}");
    q
}

async fn publish_all(ch: &Channel, queue: &str, bodies: &[&str]) {
    for body in bodies {
        publish(ch, "", queue, body.as_bytes(), BasicProperties::default()).await;
    }
}

/// Publish with confirms; true when the broker acked it.
async fn acked(ch: &Channel, queue: &str, body: &str) -> bool {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    matches!(within(confirm).await.unwrap(), Confirmation::Ack(_))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_length_cap_applies_to_queues_already_full_and_lifts_when_cleared() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "orders.eu", FieldTable::default())
        .await
        .unwrap();
    publish_all(&ch, "orders.eu", &["1", "2", "3", "4", "5"]).await;

    let (status, _) = api
        .put(
            "/api/policies/%2f/order-cap",
            json!({"pattern": "^orders\\.", "definition": {"max-length": 2}, "apply-to": "queues"}),
        )
        .await;
    assert_eq!(status, 201);
    // drop-head: the oldest go at once, as RabbitMQ does when a policy lowers the cap
    wait_until(|| async { common::amqp::depth(&ch, "orders.eu").await == 2 }).await;
    let q = queue_json(&api, "orders.eu").await;
    assert_eq!(q["policy"], "order-cap");
    assert_eq!(q["effective_policy_definition"], json!({"max-length": 2}));
    assert_eq!(q["operator_policy"], Value::Null);

    // a queue declared afterwards is under it too; one the pattern misses is not
    declare(&ch, "orders.us", FieldTable::default())
        .await
        .unwrap();
    declare(&ch, "stock", FieldTable::default()).await.unwrap();
    publish_all(&ch, "orders.us", &["a", "b", "c"]).await;
    publish_all(&ch, "stock", &["a", "b", "c"]).await;
    assert_eq!(drain_bodies(&ch, "orders.us").await, ["b", "c"]);
    assert_eq!(drain_bodies(&ch, "stock").await, ["a", "b", "c"]);
    assert_eq!(queue_json(&api, "stock").await["policy"], Value::Null);

    assert_eq!(api.delete("/api/policies/%2f/order-cap").await.0, 204);
    assert_eq!(api.delete("/api/policies/%2f/order-cap").await.0, 404);
    publish_all(&ch, "orders.eu", &["6", "7", "8"]).await;
    assert_eq!(
        drain_bodies(&ch, "orders.eu").await,
        ["4", "5", "6", "7", "8"]
    );
    assert_eq!(queue_json(&api, "orders.eu").await["policy"], Value::Null);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_policy_expires_failed_payments_into_a_parking_queue() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "payments.retry", FieldTable::default())
        .await
        .unwrap();
    declare(&ch, "payments.parked", FieldTable::default())
        .await
        .unwrap();
    let (status, _) = api
        .put(
            "/api/policies/%2f/retry",
            json!({"pattern": "^payments\\.retry$", "definition": {
                "message-ttl": 50, "dead-letter-exchange": "", "dead-letter-routing-key": "payments.parked"}}),
        )
        .await;
    assert_eq!(status, 201);
    publish(
        &ch,
        "",
        "payments.retry",
        b"order-42",
        BasicProperties::default(),
    )
    .await;
    let m = wait_for_message(&ch, "payments.parked").await;
    assert_eq!(m.delivery.data, b"order-42");
    let death = &common::amqp::deaths(&m)[0];
    assert_eq!(
        common::amqp::as_text(death.inner().get("reason")).as_deref(),
        Some("expired")
    );
    assert_eq!(
        common::amqp::as_text(death.inner().get("queue")).as_deref(),
        Some("payments.retry")
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_policies_and_operator_policies_combine_as_in_rabbitmq() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    // the service asks for 3 and drop-head; the policy says 5 and reject-publish
    let own = args(&[
        ("x-max-length", AMQPValue::LongInt(3)),
        ("x-overflow", text("drop-head")),
    ]);
    declare(&ch, "orders.classic", own.clone()).await.unwrap();
    let mut quorum = own.clone();
    quorum.insert("x-queue-type".into(), text("quorum"));
    declare_durable(&ch, "orders.quorum", quorum).await.unwrap();
    let (status, _) = api
        .put(
            "/api/policies/%2f/orders",
            json!({"pattern": "^orders\\.", "definition": {"max-length": 5, "overflow": "reject-publish"}}),
        )
        .await;
    assert_eq!(status, 201);

    // classic: the lower cap, the queue's own overflow
    for n in 0..5 {
        assert!(acked(&ch, "orders.classic", &n.to_string()).await);
    }
    assert_eq!(drain_bodies(&ch, "orders.classic").await, ["2", "3", "4"]);
    // quorum: the lower cap, the policy's overflow
    let results: Vec<bool> = {
        let mut r = Vec::new();
        for n in 0..5 {
            r.push(acked(&ch, "orders.quorum", &n.to_string()).await);
        }
        r
    };
    // as rabbit_fifo: taken until over the cap, then refused
    assert_eq!(results, [true, true, true, true, false]);

    // an operator policy caps lower still, and the effective definition says so
    let (status, _) = api
        .put(
            "/api/operator-policies/%2f/cap",
            json!({"pattern": ".*", "definition": {"max-length": 1, "message-ttl": 60000}, "apply-to": "queues"}),
        )
        .await;
    assert_eq!(status, 201);
    let q = queue_json(&api, "orders.classic").await;
    assert_eq!(q["policy"], "orders");
    assert_eq!(q["operator_policy"], "cap");
    assert_eq!(
        q["effective_policy_definition"],
        json!({"max-length": 1, "message-ttl": 60000, "overflow": "reject-publish"})
    );
    for n in 0..3 {
        assert!(acked(&ch, "orders.classic", &n.to_string()).await);
    }
    assert_eq!(drain_bodies(&ch, "orders.classic").await, ["2"]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alternate_exchange_policy_keeps_unroutable_events() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for (name, kind) in [
        ("events", ExchangeKind::Topic),
        ("unrouted", ExchangeKind::Fanout),
    ] {
        ch.exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    declare(&ch, "unrouted", FieldTable::default())
        .await
        .unwrap();
    bind(&ch, "unrouted", "unrouted", "").await;
    let (status, _) = api
        .put(
            "/api/policies/%2f/ae",
            json!({"pattern": "^events$", "definition": {"alternate-exchange": "unrouted"}, "apply-to": "exchanges"}),
        )
        .await;
    assert_eq!(status, 201);
    publish(
        &ch,
        "events",
        "order.nobody-listens",
        b"lost?",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(
        wait_for_message(&ch, "unrouted").await.delivery.data,
        b"lost?"
    );
    let (_, x) = api.get("/api/exchanges/%2f/events").await;
    assert_eq!(x["policy"], "ae");
    let (_, x) = api.get("/api/exchanges/%2f/unrouted").await;
    assert!(x.get("policy").is_none(), "{x}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiry_policy_removes_abandoned_reply_queues() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare(&ch, "replies.1", FieldTable::default())
        .await
        .unwrap();
    api.put(
        "/api/policies/%2f/expire",
        json!({"pattern": "^replies\\.", "definition": {"expires": 100}}),
    )
    .await;
    wait_until(|| common::amqp::is_gone(&ch, "replies.1")).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_survive_a_restart_and_govern_recovered_queues() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare_durable(&ch, "orders", FieldTable::default())
        .await
        .unwrap();
    api.put(
        "/api/policies/%2f/cap",
        json!({"pattern": "^orders$", "definition": {"max-length": 2}, "priority": 3}),
    )
    .await;
    api.put(
        "/api/operator-policies/%2f/ttl",
        json!({"pattern": ".", "definition": {"message-ttl": 600000}}),
    )
    .await;
    drop(ch);
    drop(conn);

    let b = b.restart().await;
    let api = admin(&b);
    let (_, list) = api.get("/api/policies").await;
    assert_eq!(
        list,
        json!([{"vhost": "/", "name": "cap", "pattern": "^orders$", "apply-to": "all",
                "definition": {"max-length": 2}, "priority": 3}])
    );
    let (_, ops) = api.get("/api/operator-policies/%2f").await;
    assert_eq!(ops[0]["name"], "ttl");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    publish_all(&ch, "orders", &["1", "2", "3"]).await;
    assert_eq!(drain_bodies(&ch, "orders").await, ["2", "3"]);
    assert_eq!(queue_json(&api, "orders").await["operator_policy"], "ttl");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_policies_and_unauthorised_users_get_rabbitmqs_answers() {
    let b = start_with_management(Config::default()).await;
    let api = admin(&b);
    let bad = |body: Value| {
        let api = &api;
        async move { api.put("/api/policies/%2f/p", body).await }
    };
    let (status, e) = bad(json!({"pattern": "^o", "definition": {"foo": 1, "bar": 2}})).await;
    assert_eq!(status, 400);
    assert_eq!(
        e["reason"],
        "Validation failed\n\n[{&lt;&lt;\"bar\"&gt;&gt;,2},{&lt;&lt;\"foo\"&gt;&gt;,1}] are not recognised policy settings\n"
    );
    let (_, e) = bad(json!({"pattern": "^o", "definition": {"message-ttl": -1}})).await;
    assert_eq!(
        e["reason"],
        "Validation failed\n\n-1 is not a valid message TTL\n"
    );
    let (_, e) = bad(json!({"definition": {"message-ttl": 1}})).await;
    assert_eq!(e["reason"], "[{key_missing,pattern}]");
    let (status, e) = api
        .put(
            "/api/policies/nosuch/p",
            json!({"pattern": "a", "definition": {"expires": 5}}),
        )
        .await;
    assert_eq!(
        (status, e),
        (
            404,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    let (status, e) = api
        .put(
            "/api/operator-policies/%2f/op",
            json!({"pattern": "a", "definition": {"overflow": "reject-publish"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        e["reason"],
        "Validation failed\n\n[{<<\"overflow\">>,<<\"reject-publish\">>}] are not recognised policy settings\n"
    );
    assert_eq!(api.get("/api/policies/%2f/p").await.0, 404);

    // a policymaker may set policies where it has access; a management user may not
    for (user, tag) in [("pm", "policymaker"), ("viewer", "management")] {
        api.put(
            &format!("/api/users/{user}"),
            json!({"password": "pw", "tags": tag}),
        )
        .await;
        api.put(
            &format!("/api/permissions/%2f/{user}"),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await;
    }
    let pm = Api::new(b.management.as_deref().unwrap(), "pm", "pw");
    let viewer = Api::new(b.management.as_deref().unwrap(), "viewer", "pw");
    let policy = json!({"pattern": "^x", "definition": {"max-length": 1}});
    assert_eq!(pm.put("/api/policies/%2f/pm", policy.clone()).await.0, 201);
    let (status, e) = viewer.put("/api/policies/%2f/viewer", policy.clone()).await;
    assert_eq!(
        (status, e["reason"].clone()),
        (401, json!("User not authorised to access object"))
    );
    assert_eq!(viewer.get("/api/policies").await.1[0]["name"], "pm");
    assert_eq!(pm.put("/api/operator-policies/%2f/op", policy).await.0, 401);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmqctl_policy_commands_work_through_warrenctl() {
    let b = start_with_management(Config::default()).await;
    let url = b.management.clone().unwrap();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || common::process::warrenctl(&url, args))
    };
    let (code, out, _) = run(&[
        "set_policy",
        "--apply-to",
        "queues",
        "--priority",
        "2",
        "cap",
        "^orders\\.",
        r#"{"max-length": 10}"#,
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Setting policy \"cap\" for pattern \"^orders\\.\" to \"{\"max-length\": 10}\" with priority \"2\" for vhost \"/\" ...\n"
    );
    let (_, out, _) = run(&["list_policies", "-q"]).await.unwrap();
    assert_eq!(
        out,
        "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n/\tcap\t^orders\\.\tqueues\t{\"max-length\":10}\t2\n"
    );
    let (code, _, err) = run(&["set_policy", "bad", "^x", r#"{"foo": 1}"#])
        .await
        .unwrap();
    assert_eq!(code, 69);
    assert!(
        err.contains("[{<<\"foo\">>,1}] are not recognised policy settings"),
        "{err}"
    );
    let (code, _, _) = run(&["set_operator_policy", "op", ".*", r#"{"max-length": 100}"#])
        .await
        .unwrap();
    assert_eq!(code, 0);
    let (_, out, _) = run(&["list_operator_policies", "-s"]).await.unwrap();
    assert_eq!(out, "/\top\t.*\tall\t{\"max-length\":100}\t0\n");
    assert_eq!(run(&["clear_policy", "cap"]).await.unwrap().0, 0);
    let (code, _, err) = run(&["clear_policy", "cap"]).await.unwrap();
    assert_eq!((code, err.trim()), (69, "Error:\nParameter does not exist"));
    assert_eq!(run(&["clear_operator_policy", "op"]).await.unwrap().0, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_set_through_the_api_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let args = |dir: &std::path::Path| {
        vec![
            "--amqp-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            dir.display().to_string(),
            "--management-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--prometheus-listen".to_owned(),
            "none".to_owned(),
        ]
    };
    let start = |dir: &std::path::Path| {
        let args = args(dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addrs, _) = common::process::spawn_with(
            &args,
            &[],
            &["listening for AMQP on ", "management API listening on "],
        );
        (
            common::process::KillOnDrop(child),
            format!("http://{}", addrs[1]),
        )
    };
    let (mut broker, url) = start(dir.path());
    let api = Api::new(&url, "guest", "guest");
    let (status, _) = api
        .put(
            "/api/policies/%2f/cap-orders",
            json!({"pattern": "^orders\\.", "apply-to": "queues", "definition": {"max-length": 10}}),
        )
        .await;
    assert_eq!(status, 201);
    // the 201 means it is committed: kill -9 straight away
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    drop(broker);
    let (_broker, url) = start(dir.path());
    let api = Api::new(&url, "guest", "guest");
    let (status, p) = api.get("/api/policies/%2f/cap-orders").await;
    assert_eq!(status, 200);
    assert_eq!(p["definition"], json!({"max-length": 10}));
}
