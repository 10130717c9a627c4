//! Orders must survive a broker restart: durable topology and persistent messages come back,
//! in order, with delivered-but-unacked ones marked redelivered; transient things do not.

mod common;

use common::{reply_code, start, within};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren::{Broker, Config};

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str, props: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        Default::default(),
        body.as_bytes(),
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

async fn bodies(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = vec![];
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
    {
        out.push((
            String::from_utf8(m.delivery.data).unwrap(),
            m.delivery.redelivered,
        ));
    }
    out
}

async fn exists(ch: &Channel, queue: &str) -> bool {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .is_ok()
}

#[tokio::test]
async fn durable_topology_and_persistent_messages_survive_a_restart_and_transient_ones_do_not() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(5));
    ch.queue_declare("order-log".into(), durable(), args.clone())
        .await
        .unwrap();
    ch.queue_bind(
        "order-log".into(),
        "orders".into(),
        "order.#".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare("scratch".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "temp-x".into(),
        ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 1..=3 {
        publish(
            &ch,
            "orders",
            "order.created",
            &format!("order-{i}"),
            persistent(),
        )
        .await;
    }
    publish(
        &ch,
        "orders",
        "order.created",
        "transient",
        BasicProperties::default(),
    )
    .await;
    publish(&ch, "", "scratch", "in-a-transient-queue", persistent()).await;
    conn.close(200, "bye".into()).await.unwrap();

    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert!(!exists(&ch, "scratch").await, "non-durable queue survived");
    let ch = conn.create_channel().await.unwrap();
    // arguments came back too: redeclaring with them is equivalent
    ch.queue_declare("order-log".into(), durable(), args)
        .await
        .unwrap();
    let err = ch
        .exchange_declare(
            "temp-x".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(404), "non-durable exchange survived");
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        bodies(&ch, "order-log").await,
        vec![
            ("order-1".into(), false),
            ("order-2".into(), false),
            ("order-3".into(), false)
        ]
    );
    // the binding came back: routing still works
    ch.confirm_select(Default::default()).await.unwrap();
    publish(&ch, "orders", "order.paid", "after-restart", persistent()).await;
    assert_eq!(
        bodies(&ch, "order-log").await,
        vec![("after-restart".into(), false)]
    );
    b.stop().await;
}

#[tokio::test]
async fn delivered_but_unacked_messages_come_back_redelivered_and_acked_ones_do_not() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("payments".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    for i in 1..=4 {
        publish(&ch, "", "payments", &format!("p{i}"), persistent()).await;
    }
    let acked = ch
        .basic_get("payments".into(), Default::default())
        .await
        .unwrap()
        .unwrap();
    acked.delivery.acker.ack(Default::default()).await.unwrap();
    let _unacked = ch
        .basic_get("payments".into(), Default::default())
        .await
        .unwrap()
        .unwrap();
    // make sure the ack reached the broker before it stops
    ch.queue_declare("payments".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        bodies(&ch, "payments").await,
        vec![
            ("p2".into(), true),
            ("p3".into(), false),
            ("p4".into(), false)
        ]
    );
    b.stop().await;
}

#[tokio::test]
async fn deleted_durable_queues_and_purged_messages_stay_gone() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("old".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare("purged".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "", "old", "x", persistent()).await;
    publish(&ch, "", "purged", "y", persistent()).await;
    ch.queue_delete("old".into(), Default::default())
        .await
        .unwrap();
    ch.queue_purge("purged".into(), Default::default())
        .await
        .unwrap();
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert!(bodies(&ch, "purged").await.is_empty());
    assert!(!exists(&ch, "old").await);
    b.stop().await;
}

#[tokio::test]
async fn a_committed_transaction_is_durable() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("ledger".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    ch.tx_select().await.unwrap();
    ch.basic_publish(
        "".into(),
        "ledger".into(),
        Default::default(),
        b"entry",
        persistent(),
    )
    .await
    .unwrap();
    ch.tx_commit().await.unwrap();
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(bodies(&ch, "ledger").await, vec![("entry".into(), false)]);
    b.stop().await;
}

#[tokio::test]
async fn a_second_broker_on_the_same_data_dir_refuses_to_start() {
    let b = start().await;
    let err = Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(b.data_dir())
        .start()
        .await
        .err()
        .expect("second broker must not start");
    assert!(
        err.to_string().contains("in use by another Warren"),
        "{err}"
    );
    b.stop().await;
}

#[tokio::test]
async fn an_unreadable_store_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warren.redb"), vec![0x5A; 16384]).unwrap();
    let err = Broker::builder()
        .config(Config::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(dir.path())
        .start()
        .await
        .err()
        .expect("garbage store must not open");
    assert!(err.to_string().contains("warren.redb"), "{err}");
}

#[tokio::test]
async fn a_backlog_past_the_memory_budget_is_paged_and_still_comes_out_in_order() {
    let config = Config {
        queue_ram_limit: 2_000, // about 20 bodies of 100 bytes; the rest waits in the store
        ..Config::default()
    };
    let b = common::start_with(config).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("deep".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let body = |i: usize| format!("{i:0100}");
    let mut confirms = vec![];
    for i in 0..3000 {
        confirms.push(
            ch.basic_publish(
                "".into(),
                "deep".into(),
                Default::default(),
                body(i).as_bytes(),
                persistent(),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        c.await.unwrap();
    }
    // the first half is consumed from this broker, the rest after a restart
    for i in 0..1500 {
        let m = within(ch.basic_get("deep".into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8(m.delivery.data).unwrap(), body(i));
    }
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let rest = bodies(&ch, "deep").await;
    assert_eq!(rest.len(), 1500);
    for (n, (got, _)) in rest.iter().enumerate() {
        assert_eq!(got, &body(1500 + n));
    }
    b.stop().await;
}

/// Persistent publishes to a durable queue on many channels at once: each channel's acks
/// only ever move forward, `multiple` acks cover runs, and together they confirm every
/// publish exactly once, and only after the store committed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_confirms_are_cumulative_and_in_order_on_many_channels() {
    use common::raw::{Raw, Tune};
    use warren::protocol::method::{self, protocol::*};
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("durable-confirms".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let addr = b.addr;
    let mut tasks = vec![];
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let (mut raw, _) = Raw::open(addr, Tune::default()).await;
            for channel in 1..=4u16 {
                raw.open_channel(channel).await;
                raw.send(
                    channel,
                    AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                        nowait: false,
                    })),
                )
                .await;
                raw.recv_method().await;
            }
            let mut burst = bytes::BytesMut::new();
            for _ in 0..250 {
                for channel in 1..=4u16 {
                    method::encode(
                        &mut burst,
                        channel,
                        &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                            exchange: "".into(),
                            routing_key: "durable-confirms".into(),
                            mandatory: false,
                            immediate: false,
                        })),
                    );
                    warren::protocol::content::encode_content(
                        &mut burst,
                        channel,
                        &[0x10, 0x00, 2],
                        b"order",
                        131072,
                    );
                }
            }
            raw.send_bytes(&burst).await;
            let mut confirmed = [0u64; 5];
            let mut multiples = 0;
            while confirmed[1..].iter().any(|c| *c < 250) {
                let (channel, m) = raw.recv_method().await;
                let AMQPClass::Basic(basic::AMQPMethod::Ack(a)) = m else {
                    panic!("unexpected {m:?}")
                };
                let c = &mut confirmed[channel as usize];
                assert!(
                    a.delivery_tag > *c,
                    "ack went backwards on channel {channel}"
                );
                if a.multiple {
                    multiples += 1;
                } else {
                    assert_eq!(a.delivery_tag, *c + 1, "a single ack skipped a publish");
                }
                *c = a.delivery_tag;
            }
            assert!(confirmed[1..].iter().all(|c| *c == 250));
            multiples
        }));
    }
    let mut multiples = 0;
    for t in tasks {
        multiples += within(t).await.unwrap();
    }
    assert!(
        multiples > 0,
        "group commit should confirm runs with multiple=true"
    );
    let q = ch
        .queue_declare(
            "durable-confirms".into(),
            QueueDeclareOptions {
                passive: true,
                ..durable()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 4 * 4 * 250);
    b.stop().await;
}

#[tokio::test]
async fn the_first_starts_user_and_vhost_are_stored_and_a_later_config_does_not_replace_them() {
    let first = Config {
        default_user: "orders".into(),
        default_pass: "s3cret".into(),
        default_vhost: "shop".into(),
        ..Config::default()
    };
    let b = common::start_with(first).await;
    let url =
        |user: &str, pass: &str, vhost: &str| format!("amqp://{user}:{pass}@{}/{vhost}", b.addr);
    let conn = lapin::Connection::connect(&url("orders", "s3cret", "shop"), Default::default())
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    // restarted with the stock configuration (guest/guest on "/"), as RabbitMQ does with
    // its default user: the store, not the config, decides after the first start
    let b = b.restart().await;
    let url =
        |user: &str, pass: &str, vhost: &str| format!("amqp://{user}:{pass}@{}/{vhost}", b.addr);
    let conn = lapin::Connection::connect(&url("orders", "s3cret", "shop"), Default::default())
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    let err = lapin::Connection::connect(&url("guest", "guest", "%2f"), Default::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403), "{err}");
    b.stop().await;
}
