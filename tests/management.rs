//! Running the shop's users, vhosts and permissions through the management API on
//! RabbitMQ's paths, and through `warrenctl` with rabbitmqctl's commands, while clients are
//! connected.

mod common;

use common::http::Api;
use common::process::warrenctl;
use common::{reply_code, start_with_management};
use serde_json::json;
use warren::Config;

#[tokio::test(flavor = "multi_thread")]
async fn whoami_and_the_login_rules() {
    let b = start_with_management(Config::default()).await;
    let url = b.management.clone().unwrap();
    let (status, body) = Api::new(&url, "guest", "guest").get("/api/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"name": "guest", "tags": ["administrator"]}));

    let (status, body) = Api::new(&url, "guest", "wrong").get("/api/whoami").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": "not_authorised", "reason": "Login failed"})
    );

    // a user without a management tag cannot log in; a management user cannot administer
    let admin = Api::new(&url, "guest", "guest");
    let (status, _) = admin
        .put("/api/users/app", json!({"password": "app", "tags": ""}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = Api::new(&url, "app", "app").get("/api/whoami").await;
    assert_eq!(
        (status, body["reason"].clone()),
        (401, json!("Not management user"))
    );
    admin
        .put(
            "/api/users/viewer",
            json!({"password": "v", "tags": "management"}),
        )
        .await;
    let (status, body) = Api::new(&url, "viewer", "v").get("/api/users").await;
    assert_eq!(
        (status, body["reason"].clone()),
        (401, json!("Not administrator user"))
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_created_updated_listed_and_deleted_with_rabbitmqs_codes() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_ref().unwrap(), "guest", "guest");

    let (status, _) = api
        .put(
            "/api/users/orders",
            json!({"password": "o1", "tags": ["management"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .put(
            "/api/users/orders",
            json!({"password": "o2", "tags": "administrator,monitoring"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, user) = api.get("/api/users/orders").await;
    assert_eq!(status, 200);
    assert_eq!(user["name"], "orders");
    assert_eq!(user["tags"], json!(["administrator", "monitoring"]));
    assert_eq!(user["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(
        user["password_hash"].as_str().unwrap().len(),
        48,
        "36 bytes, base64"
    );

    let (_, list) = api.get("/api/users").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["guest", "orders"]);

    // a hash exported from RabbitMQ imports unchanged: RabbitMQ's passwords guide,
    // "test12" with salt 908DC60A
    let (status, _) = api
        .put(
            "/api/users/imported",
            json!({
                "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": []
            }),
        )
        .await;
    assert_eq!(status, 201);
    api.put(
        "/api/permissions/%2F/imported",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await;
    b.connect_as("imported", "test12", "/").await.unwrap();

    let (status, _) = api.put("/api/users/nopass", json!({"tags": ""})).await;
    assert_eq!(status, 400);
    let (status, _) = api.delete("/api/users/orders").await;
    assert_eq!(status, 204);
    let (status, body) = api.get("/api/users/orders").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    let (status, _) = api.delete("/api/users/orders").await;
    assert_eq!(status, 404);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vhosts_and_permissions_through_the_api_take_effect_for_amqp_clients() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_ref().unwrap(), "guest", "guest");

    let (status, _) = api
        .put(
            "/api/vhosts/shop-eu",
            json!({"description": "EU shop", "tags": "prod"}),
        )
        .await;
    assert_eq!(status, 201);
    // as in RabbitMQ, the administrator who made the vhost through the API may use it
    assert_eq!(
        api.get("/api/permissions/shop-eu/guest").await,
        (
            200,
            json!({"user": "guest", "vhost": "shop-eu", "configure": ".*", "write": ".*", "read": ".*"})
        )
    );
    b.connect_as("guest", "guest", "shop-eu").await.unwrap();
    // only on creation: narrowed permissions stay narrowed when the vhost is PUT again
    api.put(
        "/api/permissions/shop-eu/guest",
        json!({"configure": "^guest", "write": ".*", "read": ".*"}),
    )
    .await;
    let (status, _) = api.put("/api/vhosts/shop-eu", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(
        api.get("/api/permissions/shop-eu/guest").await.1["configure"],
        "^guest"
    );
    let (_, v) = api.get("/api/vhosts/shop-eu").await;
    assert_eq!(v["description"], "EU shop");
    assert_eq!(v["tags"], json!(["prod"]));
    let (_, list) = api.get("/api/vhosts").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(api.get("/api/vhosts/%2F").await.0, 200);

    api.put("/api/users/orders", json!({"password": "o", "tags": ""}))
        .await;
    assert_eq!(
        reply_code(&b.connect_as("orders", "o", "shop-eu").await.unwrap_err()),
        Some(530)
    );
    let (status, _) = api
        .put(
            "/api/permissions/shop-eu/orders",
            json!({"configure": "^orders", "write": ".*", "read": ".*"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, p) = api.get("/api/permissions/shop-eu/orders").await;
    assert_eq!(
        p,
        json!({"user": "orders", "vhost": "shop-eu", "configure": "^orders", "write": ".*", "read": ".*"})
    );
    let conn = b.connect_as("orders", "o", "shop-eu").await.unwrap();
    assert_eq!(
        api.get("/api/vhosts/shop-eu/permissions")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get("/api/users/orders/permissions").await.1[0]["vhost"],
        "shop-eu"
    );
    assert_eq!(
        api.get("/api/permissions")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // a bad regular expression is a 400, and nothing changes
    let (status, body) = api
        .put(
            "/api/permissions/shop-eu/orders",
            json!({"configure": "(", "write": ".*", "read": ".*"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        api.get("/api/permissions/shop-eu/orders").await.1["configure"],
        "^orders"
    );
    // unknown user or vhost
    let (status, _) = api
        .put(
            "/api/permissions/nope/orders",
            json!({"configure": "", "write": "", "read": ""}),
        )
        .await;
    assert_eq!(status, 400);

    // deleting the vhost closes the connection on it
    assert_eq!(api.delete("/api/vhosts/shop-eu").await.0, 204);
    common::within(async {
        while conn.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(api.get("/api/vhosts/shop-eu").await.0, 404);
    assert_eq!(api.get("/api/permissions/shop-eu/orders").await.0, 404);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warrenctl_speaks_rabbitmqctl() {
    let b = start_with_management(Config::default()).await;
    let url = b.management.clone().unwrap();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || warrenctl(&url, args))
    };

    let (code, out, _) = run(&["add_user", "orders", "s3cret"]).await.unwrap();
    assert_eq!((code, out.as_str()), (0, "Adding user \"orders\" ...\n"));
    let (code, _, err) = run(&["add_user", "orders", "again"]).await.unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("user_already_exists: orders"), "{err}");
    run(&["set_user_tags", "orders", "monitoring", "management"])
        .await
        .unwrap();
    let (_, out, _) = run(&["list_users"]).await.unwrap();
    assert_eq!(
        out,
        "Listing users ...\nuser\ttags\nguest\t[administrator]\norders\t[monitoring, management]\n"
    );
    let (_, out, _) = run(&["-q", "list_users"]).await.unwrap();
    assert!(out.starts_with("user\ttags\n"), "{out}");

    run(&["add_vhost", "shop"]).await.unwrap();
    let (_, out, _) = run(&["list_vhosts"]).await.unwrap();
    assert_eq!(out, "Listing vhosts ...\nname\n/\nshop\n");
    let (code, out, _) = run(&[
        "set_permissions",
        "-p",
        "shop",
        "orders",
        "^orders",
        ".*",
        ".*",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Setting permissions for user \"orders\" in vhost \"shop\" ...\n"
    );
    let (_, out, _) = run(&["list_permissions", "-p", "shop"]).await.unwrap();
    assert_eq!(
        out,
        "Listing permissions for vhost \"shop\" ...\nuser\tconfigure\twrite\tread\norders\t^orders\t.*\t.*\n"
    );
    // the user really can use it, with the password warrenctl set
    b.connect_as("orders", "s3cret", "shop").await.unwrap();
    run(&["change_password", "orders", "n3w"]).await.unwrap();
    b.connect_as("orders", "n3w", "shop").await.unwrap();
    assert_eq!(
        reply_code(&b.connect_as("orders", "s3cret", "shop").await.unwrap_err()),
        Some(403)
    );

    run(&["clear_permissions", "-p", "shop", "orders"])
        .await
        .unwrap();
    let (_, out, _) = run(&["-s", "list_permissions", "-p", "shop"])
        .await
        .unwrap();
    assert_eq!(out, "");
    let (code, _, _) = run(&["delete_vhost", "shop"]).await.unwrap();
    assert_eq!(code, 0);
    let (code, _, err) = run(&["delete_vhost", "shop"]).await.unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
    run(&["delete_user", "orders"]).await.unwrap();
    let (_, out, _) = run(&["-q", "list_users"]).await.unwrap();
    assert_eq!(out, "user\ttags\nguest\t[administrator]\n");

    // wrong admin credentials: rabbitmqctl's "no permission" exit code
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warrenctl"))
        .args(["--url", &url, "--password", "wrong", "list_users"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vhost_limits_are_per_vhost_and_survive_a_restart() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_ref().unwrap(), "guest", "guest");
    api.put("/api/vhosts/flash-sale", json!({})).await;
    api.put(
        "/api/permissions/flash-sale/guest",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await;
    let (status, _) = api
        .put(
            "/api/vhost-limits/flash-sale/max-connections",
            json!({"value": 1}),
        )
        .await;
    assert_eq!(status, 204);
    api.put(
        "/api/vhost-limits/flash-sale/max-queues",
        json!({"value": 2}),
    )
    .await;
    assert_eq!(
        api.get("/api/vhost-limits").await.1,
        json!([{"vhost": "flash-sale", "value": {"max-connections": 1, "max-queues": 2}}])
    );
    let (status, _) = api
        .put(
            "/api/vhost-limits/flash-sale/max-bananas",
            json!({"value": 1}),
        )
        .await;
    assert_eq!(status, 400);

    let first = b.connect_as("guest", "guest", "flash-sale").await.unwrap();
    let err = b
        .connect_as("guest", "guest", "flash-sale")
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        common::reply_text(&err),
        "NOT_ALLOWED - access to vhost 'flash-sale' refused for user 'guest': connection limit (1) is reached"
    );
    // other vhosts are not limited by it
    let _a = b.connect().await;
    let _b = b.connect().await;
    let ch = first.create_channel().await.unwrap();
    for q in ["q1", "q2"] {
        ch.queue_declare(q.into(), Default::default(), Default::default())
            .await
            .unwrap();
    }
    let err = ch
        .queue_declare("q3".into(), Default::default(), Default::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    drop(first);

    // stored: after a restart the limit still holds; 0 allows no connection at all
    let b = b.restart().await;
    let s = b.state();
    assert_eq!(
        s.vhost("flash-sale").unwrap().limit("max-connections", 0),
        Some(1)
    );
    s.set_vhost_limit("flash-sale", "max-connections", Some(0))
        .await
        .unwrap();
    let err = b
        .connect_as("guest", "guest", "flash-sale")
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    // a negative limit lifts it, as in RabbitMQ
    s.set_vhost_limit("flash-sale", "max-connections", Some(-1))
        .await
        .unwrap();
    b.connect_as("guest", "guest", "flash-sale").await.unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warrenctl_sets_and_lists_vhost_limits() {
    let b = start_with_management(Config::default()).await;
    let url = b.management.clone().unwrap();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || warrenctl(&url, args))
    };
    let (code, _, err) = run(&["set_vhost_limits", "-p", "/", r#"{"max-queues": 100}"#])
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["-q", "list_vhost_limits", "-p", "/"]).await.unwrap();
    assert_eq!(out, "{\"max-queues\":100}\n");
    run(&["clear_vhost_limits", "-p", "/"]).await.unwrap();
    let (_, out, _) = run(&["-q", "list_vhost_limits"]).await.unwrap();
    assert_eq!(out, "{}\n");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_permissions_per_user_and_vhost_and_the_users_nobody_gave_access() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    api.put("/api/users/auditor", json!({"password": "a", "tags": ""}))
        .await;
    api.put("/api/users/shop", json!({"password": "s", "tags": ""}))
        .await;
    api.put(
        "/api/permissions/%2f/shop",
        json!({"configure": "", "write": ".*", "read": ".*"}),
    )
    .await;
    api.put(
        "/api/topic-permissions/%2f/shop",
        json!({"exchange": "amq.topic", "write": "^orders\\.", "read": ".*"}),
    )
    .await;
    let expected = json!([{"user": "shop", "vhost": "/", "exchange": "amq.topic",
                           "write": "^orders\\.", "read": ".*"}]);
    assert_eq!(
        api.get("/api/users/shop/topic-permissions").await,
        (200, expected.clone())
    );
    assert_eq!(
        api.get("/api/vhosts/%2f/topic-permissions").await,
        (200, expected)
    );
    assert_eq!(api.get("/api/users/nobody/topic-permissions").await.0, 404);
    let (_, lonely) = api.get("/api/users/without-permissions").await;
    let names: Vec<&str> = lonely
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["auditor"]);
    assert_eq!(
        api.get("/api/cluster-name").await,
        (200, json!({"name": "warren"}))
    );
    assert_eq!(api.get("/api/extensions").await, (200, json!([])));
    b.stop().await;
}

/// An operator names the cluster (Grafana dashboards and the UI show it), keeps a tool's
/// global parameter, sets vhost limits as a runtime parameter, and cleans up users; what
/// Warren cannot act on (other components, unknown limits) is refused by name.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_name_and_parameters_are_kept_and_unsupported_ones_refused() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    assert_eq!(api.put("/api/cluster-name", json!({})).await.0, 400);
    assert_eq!(
        api.put("/api/cluster-name", json!({"name": "shop-eu"}))
            .await
            .0,
        204
    );
    assert_eq!(
        api.put(
            "/api/global-parameters/terraform",
            json!({"value": {"owner": "ops"}})
        )
        .await
        .0,
        201
    );
    let (status, body) = api
        .put(
            "/api/parameters/vhost-limits/%2f/limits",
            json!({"value": {"max-queues": 50}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = api
        .put(
            "/api/parameters/shovel/%2f/move-orders",
            json!({"value": {}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("component shovel not found"));
    let (status, body) = api
        .put("/api/user-limits/guest/max-queues", json!({"value": 10}))
        .await;
    assert_eq!(status, 400);
    assert!(body["reason"].as_str().unwrap().contains("max-queues"));
    for name in ["old-1", "old-2"] {
        api.put(
            &format!("/api/users/{name}"),
            json!({"password": "x", "tags": ""}),
        )
        .await;
    }
    assert_eq!(
        api.post(
            "/api/users/bulk-delete",
            json!({"users": ["old-1", "old-2"]})
        )
        .await
        .0,
        204
    );
    assert_eq!(api.get("/api/users/old-1").await.0, 404);
    // a queue has no mirrors to sync, as a RabbitMQ queue without mirrors
    api.put("/api/queues/%2f/orders", json!({"durable": true}))
        .await;
    let action = "/api/queues/%2f/orders/actions";
    assert_eq!(api.post(action, json!({"action": "sync"})).await.0, 204);
    assert_eq!(api.post(action, json!({"action": "shuffle"})).await.0, 400);
    assert_eq!(
        api.post("/api/queues/%2f/nope/actions", json!({"action": "sync"}))
            .await
            .0,
        404
    );
    assert_eq!(api.get("/api/feature-flags").await, (200, json!([])));

    // everything set survives a restart, and clients see the new name
    let b = b.restart().await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    assert_eq!(
        api.get("/api/cluster-name").await.1,
        json!({"name": "shop-eu"})
    );
    let (_, globals) = api.get("/api/global-parameters").await;
    assert_eq!(
        globals,
        json!([
            {"name": "cluster_name", "value": "shop-eu"},
            {"name": "terraform", "value": {"owner": "ops"}}
        ])
    );
    assert_eq!(
        api.get("/api/parameters").await.1,
        json!([{"vhost": "/", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 50}}])
    );
    assert_eq!(api.get("/api/overview").await.1["cluster_name"], "shop-eu");
    let (_, defs) = api.get("/api/definitions").await;
    assert_eq!(defs["global_parameters"], globals);
    b.stop().await;
}

/// An operator's shell scripts and a container healthcheck call `rabbitmqctl` and
/// `rabbitmq-diagnostics`; with warrenctl installed under those names they run unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmqctl_and_rabbitmq_diagnostics_scripts_run_unchanged() {
    let b = start_with_management(Config::default()).await;
    let url = b.management.clone().unwrap();
    let api = Api::new(&url, "guest", "guest");
    api.put(
        "/api/queues/%2f/orders",
        json!({"durable": true, "arguments": {"x-max-length": 10}}),
    )
    .await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    common::amqp::publish(&ch, "", "orders", b"order-1", Default::default()).await;
    common::amqp::wait_until(|| async {
        api.get("/api/queues/%2f/orders").await.1["messages"] == 1
    })
    .await;
    let bin = tempfile::tempdir().unwrap();
    for name in ["rabbitmqctl", "rabbitmq-diagnostics"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_warrenctl"), bin.path().join(name)).unwrap();
    }
    let run = |tool: &str, args: &[&str]| {
        let out = std::process::Command::new(bin.path().join(tool))
            .args(args)
            .env("WARRENCTL_URL", &url)
            .env_remove("WARRENCTL_USERNAME")
            .env_remove("WARRENCTL_PASSWORD")
            .env_remove("RABBITMQ_DEFAULT_USER")
            .env_remove("RABBITMQ_DEFAULT_PASS")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = tokio::task::block_in_place(|| {
        run(
            "rabbitmqctl",
            &["list_queues", "name", "durable", "arguments", "messages"],
        )
    });
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Timeout: 60.0 seconds ...\nListing queues for vhost / ...\n\
         name\tdurable\targuments\tmessages\norders\ttrue\t[{\"x-max-length\",10}]\t1\n"
    );
    let (code, _, err) =
        tokio::task::block_in_place(|| run("rabbitmqctl", &["list_queues", "nme"]));
    assert_eq!(code, 64);
    assert!(err.contains("nme"), "{err}");
    let (_, out, _) = tokio::task::block_in_place(|| {
        run("rabbitmqctl", &["-q", "list_connections", "user", "vhost"])
    });
    assert_eq!(out, "user\tvhost\nguest\t/\n");
    let (code, out, _) =
        tokio::task::block_in_place(|| run("rabbitmq-diagnostics", &["check_port_connectivity"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&b.addr.port().to_string()), "{out}");
    for check in ["ping", "check_running", "check_local_alarms"] {
        let (code, _, err) = tokio::task::block_in_place(|| run("rabbitmq-diagnostics", &[check]));
        assert_eq!(code, 0, "{check}: {err}");
    }
    let (code, out, _) =
        tokio::task::block_in_place(|| run("rabbitmqctl", &["delete_queue", "orders"]));
    assert_eq!(code, 0);
    assert!(
        out.ends_with("Queue was successfully deleted with 1 ready messages\n"),
        "{out}"
    );
    let name = api.get("/api/connections").await.1[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _, _) = tokio::task::block_in_place(|| {
        run("rabbitmqctl", &["close_connection", &name, "maintenance"])
    });
    assert_eq!(code, 0);
    common::amqp::wait_until(|| async { !conn.status().connected() }).await;
    b.stop().await;
}

/// A flash sale's bot account gets user limits: one connection and two channels, on any
/// vhost; one more is refused with RabbitMQ's texts, and the limits survive a restart.
#[tokio::test(flavor = "multi_thread")]
async fn user_limits_cap_a_users_connections_and_channels() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    api.put("/api/users/bot", json!({"password": "bot", "tags": ""}))
        .await;
    api.put(
        "/api/permissions/%2f/bot",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await;
    for (limit, value) in [("max-connections", 1), ("max-channels", 2)] {
        let (status, body) = api
            .put(
                &format!("/api/user-limits/bot/{limit}"),
                json!({"value": value}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, _) = api
        .put(
            "/api/user-limits/bot/max-connections",
            json!({"value": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        api.get("/api/user-limits").await.1,
        json!([{"user": "bot", "value": {"max-channels": 2, "max-connections": 1}}])
    );
    let first = b.connect_as("bot", "bot", "/").await.unwrap();
    let err = b.connect_as("bot", "bot", "/").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    assert!(
        common::reply_text(&err)
            .contains("connection refused for user 'bot': user connection limit (1) is reached"),
        "{err}"
    );
    let _one = first.create_channel().await.unwrap();
    let _two = first.create_channel().await.unwrap();
    let err = first.create_channel().await.unwrap_err();
    assert!(
        common::reply_text(&err).contains(
            "number of channels opened for user 'bot' has reached the maximum allowed user limit of (2)"
        ),
        "{err}"
    );
    // other users are not limited
    let guest = b.connect().await;
    for _ in 0..3 {
        guest.create_channel().await.unwrap();
    }
    let b = b.restart().await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let (_, user) = api.get("/api/users/bot").await;
    assert_eq!(
        user["limits"],
        json!({"max-channels": 2, "max-connections": 1})
    );
    assert_eq!(
        api.delete("/api/user-limits/bot/max-connections").await.0,
        204
    );
    let _a = b.connect_as("bot", "bot", "/").await.unwrap();
    let _b = b.connect_as("bot", "bot", "/").await.unwrap();
    b.stop().await;
}
