//! Who may do what, as a shop sets it up: one user per service, each with its own vhost
//! or its own corner of one, permissions as RabbitMQ's regular expressions, refusals as
//! RabbitMQ words them, changes that apply at once and survive a restart.

mod common;

use common::{reply_code, reply_text, start, within, TestBroker};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use warren::broker::admin::PasswordSpec;
use warren::broker::permissions::TopicPermission;
use warren::broker::vhost::VHostMeta;

/// The orders service: may create and read `orders.*` queues, publish to the `orders`
/// exchange and the default exchange, and nothing else.
async fn with_orders_user(b: &TestBroker) {
    let s = b.state();
    s.put_user("orders", PasswordSpec::Clear("o-pass".into()), vec![])
        .await
        .unwrap();
    s.set_permissions(
        "orders",
        "/",
        "^orders(\\..*)?$",
        "^(orders|amq\\.default|orders\\..*)$",
        "^(orders|orders\\..*)$",
    )
    .await
    .unwrap();
}

/// Publish one message on a confirm channel and wait for its confirm (or the error).
async fn publish(
    ch: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
) -> Result<(), lapin::Error> {
    within(async {
        ch.basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            b"x",
            properties,
        )
        .await?
        .await
    })
    .await
    .map(|_| ())
}

fn plain() -> BasicProperties {
    BasicProperties::default()
}

fn as_user(user_id: &str) -> BasicProperties {
    BasicProperties::default().with_user_id(user_id.into())
}

async fn declare(ch: &lapin::Channel, q: &str) -> Result<(), lapin::Error> {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_permissions_on_a_vhost_is_refused_at_open() {
    let b = start().await;
    b.state()
        .put_user("stranger", PasswordSpec::Clear("s".into()), vec![])
        .await
        .unwrap();
    let err = b.connect_as("stranger", "s", "/").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err),
        "NOT_ALLOWED - access to vhost '/' refused for user 'stranger'"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configure_permission_decides_which_queues_a_user_may_declare_and_delete() {
    let b = start().await;
    with_orders_user(&b).await;
    let conn = b.connect_as("orders", "o-pass", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "orders.new").await.unwrap();
    let err = declare(&ch, "payments").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - configure access to queue 'payments' in vhost '/' refused for user 'orders'"
    );
    // the channel closed, the connection did not
    let ch = conn.create_channel().await.unwrap();
    // a server-named queue is checked under its generated name: amq.gen-... is not orders.*
    let err = declare(&ch, "").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert!(
        reply_text(&err).contains("queue 'amq.gen-"),
        "{}",
        reply_text(&err)
    );
    // passive declare needs no permission, as in RabbitMQ
    let admin = b.connect().await;
    let ach = admin.create_channel().await.unwrap();
    declare(&ach, "payments").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "payments".into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .queue_delete("payments".into(), QueueDeleteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn write_permission_on_the_exchange_decides_who_may_publish() {
    let b = start().await;
    with_orders_user(&b).await;
    let admin = b.connect().await;
    let ach = admin.create_channel().await.unwrap();
    for x in ["orders", "payments"] {
        ach.exchange_declare(
            x.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let conn = b.connect_as("orders", "o-pass", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "orders", "rk", plain()).await.unwrap();
    publish(&ch, "", "rk", plain()).await.unwrap();
    let err = publish(&ch, "payments", "rk", plain()).await.unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - write access to exchange 'payments' in vhost '/' refused for user 'orders'"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_permission_decides_consume_get_and_purge_and_binding_needs_both_ends() {
    let b = start().await;
    with_orders_user(&b).await;
    let admin = b.connect().await;
    let ach = admin.create_channel().await.unwrap();
    declare(&ach, "payments").await.unwrap();
    declare(&ach, "orders.in").await.unwrap();
    let conn = b.connect_as("orders", "o-pass", "/").await.unwrap();

    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .basic_consume(
            "payments".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - read access to queue 'payments' in vhost '/' refused for user 'orders'"
    );
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .basic_get("payments".into(), BasicGetOptions::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_purge("payments".into(), QueuePurgeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));

    // allowed on its own queue
    let ch = conn.create_channel().await.unwrap();
    ch.basic_get("orders.in".into(), BasicGetOptions::default())
        .await
        .unwrap();
    ch.queue_purge("orders.in".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    // binding orders.in to amq.topic: write on the queue is there, read on amq.topic is not
    let err = ch
        .queue_bind(
            "orders.in".into(),
            "amq.topic".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - read access to exchange 'amq.topic' in vhost '/' refused for user 'orders'"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_permissions_refuses_the_very_next_publish() {
    let b = start().await;
    with_orders_user(&b).await;
    let conn = b.connect_as("orders", "o-pass", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "orders.q").await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        publish(&ch, "", "orders.q", plain()).await.unwrap();
    }
    b.state().clear_permissions("orders", "/").await.unwrap();
    let err = publish(&ch, "", "orders.q", plain()).await.unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    // and a new connection cannot even open the vhost
    let err = b.connect_as("orders", "o-pass", "/").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_permissions_limit_routing_keys_on_topic_exchanges() {
    let b = start().await;
    let s = b.state();
    s.put_user("shipping", PasswordSpec::Clear("p".into()), vec![])
        .await
        .unwrap();
    s.set_permissions("shipping", "/", ".*", ".*", ".*")
        .await
        .unwrap();
    s.set_topic_permissions(TopicPermission {
        user: "shipping".into(),
        vhost: "/".into(),
        exchange: "amq.topic".into(),
        write: "^{username}\\.".into(),
        read: "^shipping\\.|^orders\\.shipped$".into(),
    })
    .await
    .unwrap();
    let conn = b.connect_as("shipping", "p", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "shipping.events").await.unwrap();
    ch.queue_bind(
        "shipping.events".into(),
        "amq.topic".into(),
        "orders.shipped".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .queue_bind(
            "shipping.events".into(),
            "amq.topic".into(),
            "payments.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - read access to topic 'payments.#' in exchange 'amq.topic' in vhost '/' refused for user 'shipping'"
    );
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "amq.topic", "shipping.label.printed", plain())
        .await
        .unwrap();
    let err = publish(&ch, "amq.topic", "orders.created", plain())
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - write access to topic 'orders.created' in exchange 'amq.topic' in vhost '/' refused for user 'shipping'"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_vhost_closes_its_connections_and_removes_everything_in_it() {
    let b = start().await;
    let s = b.state();
    s.add_vhost("shop", VHostMeta::default()).await.unwrap();
    s.set_permissions("guest", "shop", ".*", ".*", ".*")
        .await
        .unwrap();
    let conn = b.connect_as("guest", "guest", "shop").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "orders".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "orders".into(),
        BasicPublishOptions::default(),
        b"o1",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .unwrap();
    // a connection to another vhost stays
    let other = b.connect().await;

    s.delete_vhost("shop").await.unwrap();
    within(async {
        while conn.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(other.status().connected());
    let err = b.connect_as("guest", "guest", "shop").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(530));

    // recreated, it is empty: no queue, no messages, no permissions; and after a restart too
    s.add_vhost("shop", VHostMeta::default()).await.unwrap();
    assert!(s.permissions.get("guest", "shop").is_none());
    s.set_permissions("guest", "shop", ".*", ".*", ".*")
        .await
        .unwrap();
    let b = b.restart().await;
    let conn = b.connect_as("guest", "guest", "shop").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            "orders".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(404));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_tags_permissions_and_vhosts_survive_a_restart() {
    let b = start().await;
    let s = b.state();
    s.put_user(
        "ops",
        PasswordSpec::Clear("ops-pass".into()),
        vec!["monitoring".into()],
    )
    .await
    .unwrap();
    s.add_vhost(
        "eu",
        VHostMeta {
            description: "EU shop".into(),
            tags: vec!["prod".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.set_permissions("ops", "eu", "", "", "^metrics$")
        .await
        .unwrap();
    s.set_topic_permissions(TopicPermission {
        user: "ops".into(),
        vhost: "eu".into(),
        exchange: "amq.topic".into(),
        write: "^$".into(),
        read: ".*".into(),
    })
    .await
    .unwrap();
    s.put_user("temp", PasswordSpec::Clear("t".into()), vec![])
        .await
        .unwrap();
    s.set_permissions("temp", "eu", ".*", ".*", ".*")
        .await
        .unwrap();
    s.delete_user("temp").await.unwrap();

    let b = b.restart().await;
    let s = b.state();
    let ops = s.users.check("ops", "ops-pass").expect("ops still logs in");
    assert_eq!(ops.tags, vec!["monitoring"]);
    assert!(s.users.get("temp").is_none());
    assert!(s.permissions.get("temp", "eu").is_none());
    let p = s.permissions.get("ops", "eu").unwrap();
    assert_eq!(
        (p.configure.source.as_str(), p.read.source.as_str()),
        ("", "^metrics$")
    );
    assert!(s.permissions.has_topic("ops", "eu"));
    assert_eq!(s.vhost("eu").unwrap().meta().description, "EU shop");
    // the default user is the first start's administrator, not re-created
    assert_eq!(s.users.get("guest").unwrap().tags, vec!["administrator"]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_passwords_from_one_address_are_slowed_down() {
    let b = start().await;
    let mut last = std::time::Duration::ZERO;
    for _ in 0..7 {
        let t = std::time::Instant::now();
        let err = b.connect_as("guest", "wrong", "/").await.unwrap_err();
        assert_eq!(reply_code(&err), Some(403));
        last = t.elapsed();
    }
    // five pass at once, then one per second: the seventh waited for its slot
    assert!(last >= std::time::Duration::from_millis(900), "{last:?}");
    // the right password is never delayed into a refusal
    b.connect_as("guest", "guest", "/").await.unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_cannot_claim_another_user_id_unless_it_is_an_impersonator() {
    let b = start().await;
    with_orders_user(&b).await;
    let s = b.state();
    s.put_user(
        "gateway",
        PasswordSpec::Clear("g".into()),
        vec!["impersonator".into()],
    )
    .await
    .unwrap();
    s.set_permissions("gateway", "/", ".*", ".*", ".*")
        .await
        .unwrap();
    let conn = b.connect_as("orders", "o-pass", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "", "anywhere", as_user("orders"))
        .await
        .unwrap();
    let err = publish(&ch, "", "anywhere", as_user("payments"))
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - user_id property set to 'payments' but authenticated user was 'orders'"
    );
    let conn = b.connect_as("gateway", "g", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "", "anywhere", as_user("payments"))
        .await
        .unwrap();
    b.stop().await;
}

/// Serve connections on a listener of the test's own as if they came from `peer`: the
/// loopback rule reads the peer address, and a test may only use 127.0.0.1.
async fn listen_as_if_from(b: &TestBroker, peer: &str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = b.state().clone();
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(warren::connection::serve(
                stream,
                peer,
                addr,
                state.clone(),
                None,
            ));
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_may_only_connect_from_loopback_unless_loopback_users_says_otherwise() {
    let b = start().await;
    with_orders_user(&b).await;
    let remote = listen_as_if_from(&b, "203.0.113.7:40000").await;
    let connect = |user: &str, pass: &str| {
        let url = format!("amqp://{user}:{pass}@{remote}/%2f");
        async move { lapin::Connection::connect(&url, Default::default()).await }
    };
    let err = connect("guest", "guest").await.unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - user 'guest' can only connect via localhost"
    );
    // other users may come from anywhere
    connect("orders", "o-pass").await.unwrap();
    b.stop().await;

    let b = common::start_with(warren::Config {
        loopback_users: vec![],
        ..Default::default()
    })
    .await;
    let remote = listen_as_if_from(&b, "203.0.113.7:40000").await;
    let url = format!("amqp://guest:guest@{remote}/%2f");
    lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_user_closes_its_connections_and_only_its() {
    let b = start().await;
    with_orders_user(&b).await;
    let (mut raw, _) = common::raw::Raw::open_as(b.addr, "orders", "o-pass").await;
    let other = b.connect().await;
    b.state().delete_user("orders").await.unwrap();
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (320, "CONNECTION_FORCED - user 'orders' is deleted")
    );
    assert!(other.status().connected());
    b.stop().await;
}
