//! A shop moves from RabbitMQ to Warren with the definitions file RabbitMQ 3.10 exported
//! (tests/fixtures/rabbitmq-3.10-definitions.json, recorded from Debian's RabbitMQ), and
//! takes Warren's own export to a new machine.

mod common;

use std::collections::BTreeSet;

use common::http::Api;
use common::start_with_management;
use serde_json::{json, Value};
use warren::Config;

fn rabbitmq_export() -> Value {
    let text = include_str!("fixtures/rabbitmq-3.10-definitions.json");
    serde_json::from_str(text).unwrap()
}

/// One section of a definitions file as a set, so order does not matter.
fn section(defs: &Value, key: &str) -> BTreeSet<String> {
    defs[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(|v| v.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rabbitmq_export_imports_and_exports_again_unchanged() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let rabbitmq = rabbitmq_export();
    let (status, body) = api.post("/api/definitions", rabbitmq.clone()).await;
    assert_eq!(status, 204, "{body}");

    let (status, warren) = api.get("/api/definitions").await;
    assert_eq!(status, 200);
    // older scripts still read it by RabbitMQ's former name
    let (status, old_name) = api.get("/api/all-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(old_name, warren);
    for key in [
        "queues",
        "exchanges",
        "bindings",
        "permissions",
        "topic_permissions",
        "policies",
    ] {
        assert_eq!(section(&warren, key), section(&rabbitmq, key), "{key}");
    }
    // the imported policies govern queues as in RabbitMQ: the retry policy a retry queue,
    // the mirroring policy no quorum queue
    api.put("/api/queues/shop/payments.retry", json!({"durable": true}))
        .await;
    let (_, q) = api.get("/api/queues/shop/payments.retry").await;
    assert_eq!(q["policy"], "payments-retry", "{q}");
    assert_eq!(q["effective_policy_definition"]["message-ttl"], 30000);
    let (_, q) = api.get("/api/queues/shop/payments").await;
    assert_eq!(q["policy"], Value::Null, "{q}");
    let users = |d: &Value| -> BTreeSet<String> {
        d["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| json!([u["name"], u["password_hash"], u["tags"]]).to_string())
            .collect()
    };
    assert_eq!(users(&warren), users(&rabbitmq));
    let names = |d: &Value| -> BTreeSet<String> {
        d["vhosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].to_string())
            .collect()
    };
    assert_eq!(names(&warren), names(&rabbitmq));

    // the password hash came over: the shop's user logs in with its RabbitMQ password
    let conn = b
        .connect_as("shop", "shop-secret", "shop")
        .await
        .expect("login");
    let ch = conn.create_channel().await.unwrap();
    let ok = ch
        .queue_declare(
            "payments".into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(ok.message_count(), 0);
    assert!(b.connect_as("shop", "wrong", "shop").await.is_err());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warrens_export_moves_to_a_new_broker() {
    let old = start_with_management(Config::default()).await;
    let api = Api::new(old.management.as_deref().unwrap(), "guest", "guest");
    api.post("/api/definitions", rabbitmq_export()).await;
    api.put(
        "/api/vhost-limits/shop/max-connections",
        json!({"value": 10}),
    )
    .await;
    let (_, exported) = api.get("/api/definitions").await;
    assert_eq!(
        exported["parameters"],
        json!([{"value": {"max-connections": 10}, "vhost": "shop", "component": "vhost-limits", "name": "limits"}])
    );
    old.stop().await;

    let new = start_with_management(Config::default()).await;
    let api = Api::new(new.management.as_deref().unwrap(), "guest", "guest");
    let (status, body) = api.post("/api/definitions", exported.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (_, again) = api.get("/api/definitions").await;
    for key in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert_eq!(section(&again, key), section(&exported, key), "{key}");
    }
    let (_, shop) = api.get("/api/definitions/shop").await;
    assert_eq!(shop["queues"].as_array().unwrap().len(), 3);
    assert!(shop.get("users").is_none());
    new.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_warren_cannot_honour_yet_is_refused_by_name_and_nothing_is_imported() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let mut defs = rabbitmq_export();
    defs["policies"] = json!([{"vhost": "shop", "name": "federate", "pattern": ".*",
        "apply-to": "queues", "definition": {"federation-upstream-set": "all"}, "priority": 0}]);
    let (status, body) = api.post("/api/definitions", defs).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["reason"],
        "policy 'federate': Validation failed\n\n[{<<\"federation-upstream-set\">>,<<\"all\">>}] are not recognised policy settings\n"
    );
    let mut defs = rabbitmq_export();
    defs["parameters"] =
        json!([{"vhost": "shop", "component": "federation-upstream", "name": "dc2", "value": {}}]);
    let (status, body) = api.post("/api/definitions", defs).await;
    assert_eq!(status, 400);
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("federation-upstream"));
    let mut defs = rabbitmq_export();
    defs["vhosts"][0]["default_queue_type"] = json!("quorum");
    let (status, body) = api.post("/api/definitions", defs).await;
    assert_eq!(status, 400);
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("default_queue_type 'quorum'"));
    let mut defs = rabbitmq_export();
    defs["users"][0]["limits"] = json!({"max-queues": 5});
    let (status, body) = api.post("/api/definitions", defs).await;
    assert_eq!(status, 400);
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("limit 'max-queues'"));
    // nothing of either file arrived
    assert_eq!(api.get("/api/vhosts/shop").await.0, 404);
    // the user limits RabbitMQ has are imported
    let mut defs = rabbitmq_export();
    defs["users"][0]["limits"] = json!({"max-connections": 5});
    let user = defs["users"][0]["name"].as_str().unwrap().to_owned();
    assert_eq!(api.post("/api/definitions", defs).await.0, 204);
    assert_eq!(
        api.get(&format!("/api/user-limits/{user}")).await.1,
        json!([{"user": user, "value": {"max-connections": 5}}])
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_starts_with_its_definitions_file_loaded() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rabbitmq-3.10-definitions.json"
    );
    let config = Config {
        load_definitions: Some(fixture.into()),
        ..Config::default()
    };
    let b = start_with_management(config.clone()).await;
    let conn = b
        .connect_as("shop", "shop-secret", "shop")
        .await
        .expect("login");
    let ch = conn.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare("orders.created".into(), passive, Default::default())
        .await
        .expect("the file's queue exists");
    conn.close(200, "bye".into()).await.unwrap();
    // what the file created was stored like anything declared: it is there after a restart
    let b = b.restart().await;
    assert!(b.connect_as("shop", "shop-secret", "shop").await.is_ok());
    b.stop().await;

    // a file that cannot be honoured stops start-up, naming the file and the reason
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("definitions.json");
    std::fs::write(&bad, r#"{"policies": [{"name": "ha-all", "vhost": "/"}]}"#).unwrap();
    let config = Config {
        load_definitions: Some(bad.clone()),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let err = warren::Broker::builder()
        .config(config)
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .err()
        .expect("start-up refused");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load definitions from {}: policy 'ha-all': [{{key_missing,pattern}}]",
            bad.display()
        )
    );
}
