//! Dead-lettering as shops use it: a rejected order goes to a parking queue with its
//! history in `x-death`, a delay queue hands messages on when their TTL ends, a retry
//! queue counts attempts, and messages pushed out by a length limit are not lost.
//! The tests that only use AMQP also pass against RabbitMQ
//! (`scripts/against-rabbitmq.sh deadletter`).

mod common;

use common::amqp::*;
use common::{start, within};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

async fn fanout(ch: &lapin::Channel, name: &str) {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

async fn reject(ch: &lapin::Channel, tag: u64) {
    ch.basic_reject(tag, BasicRejectOptions { requeue: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rejected_order_is_parked_with_its_history() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    fanout(&ch, "orders.dlx").await;
    declare(&ch, "orders.parked", FieldTable::default())
        .await
        .unwrap();
    bind(&ch, "orders.parked", "orders.dlx", "").await;
    declare(
        &ch,
        "orders",
        args(&[("x-dead-letter-exchange", text("orders.dlx"))]),
    )
    .await
    .unwrap();
    let props = BasicProperties::default()
        .with_message_id("order-1".into())
        .with_expiration("600000".into());
    publish(&ch, "", "orders", b"order 1", props).await;
    let m = wait_for_message(&ch, "orders").await;
    reject(&ch, m.delivery.delivery_tag).await;

    let parked = wait_for_message(&ch, "orders.parked").await;
    assert_eq!(&parked.delivery.data[..], b"order 1");
    assert_eq!(
        parked
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("order-1")
    );
    // the expiration is gone from the dead-lettered copy and kept in its history
    assert!(parked.delivery.properties.expiration().is_none());
    let d = deaths(&parked);
    assert_eq!(d.len(), 1);
    let e = d[0].inner();
    assert_eq!(as_int(e.get("count")), Some(1));
    assert_eq!(as_text(e.get("reason")).as_deref(), Some("rejected"));
    assert_eq!(as_text(e.get("queue")).as_deref(), Some("orders"));
    assert_eq!(as_text(e.get("exchange")).as_deref(), Some(""));
    assert_eq!(
        as_text(e.get("original-expiration")).as_deref(),
        Some("600000")
    );
    assert!(matches!(e.get("time"), Some(AMQPValue::Timestamp(_))));
    match e.get("routing-keys") {
        Some(AMQPValue::FieldArray(a)) => {
            assert_eq!(as_text(a.as_slice().first()).as_deref(), Some("orders"))
        }
        other => panic!("routing-keys: {other:?}"),
    }
    assert_eq!(
        as_text(header(&parked, "x-first-death-reason")).as_deref(),
        Some("rejected")
    );
    assert_eq!(
        as_text(header(&parked, "x-first-death-queue")).as_deref(),
        Some("orders")
    );
    assert_eq!(
        as_text(header(&parked, "x-first-death-exchange")).as_deref(),
        Some("")
    );
    b.stop().await;
}

#[tokio::test]
async fn nack_multiple_without_requeue_dead_letters_each_and_ack_does_not() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "dead", FieldTable::default()).await.unwrap();
    declare(
        &ch,
        "work",
        args(&[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dead")),
        ]),
    )
    .await
    .unwrap();
    for i in 0..4u8 {
        publish(&ch, "", "work", &[i], BasicProperties::default()).await;
    }
    let mut tags = vec![];
    for _ in 0..4 {
        tags.push(wait_for_message(&ch, "work").await.delivery.delivery_tag);
    }
    ch.basic_ack(tags[0], Default::default()).await.unwrap();
    ch.basic_nack(
        tags[3],
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    )
    .await
    .unwrap();
    let mut bodies = vec![];
    for _ in 0..3 {
        let m = wait_for_message(&ch, "dead").await;
        // the new routing key is used, the old one is what x-death remembers
        assert_eq!(m.delivery.routing_key.as_str(), "dead");
        bodies.push(m.delivery.data[0]);
    }
    assert_eq!(bodies, vec![1, 2, 3]);
    assert_eq!(depth(&ch, "dead").await, 0);
    b.stop().await;
}

#[tokio::test]
async fn a_delay_queue_hands_messages_on_when_their_ttl_ends() {
    // Laravel / Symfony Messenger / Celery style: publish to a queue nobody consumes
    // with a TTL, and let dead-lettering move the message to the work queue.
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "emails", FieldTable::default()).await.unwrap();
    declare(
        &ch,
        "emails.delay.50",
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(50)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("emails")),
            ("x-expires", AMQPValue::LongInt(60_000)),
        ]),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "",
        "emails.delay.50",
        b"welcome",
        BasicProperties::default(),
    )
    .await;
    // a per-message TTL shorter than the queue's wins
    let short = BasicProperties::default().with_expiration("10".into());
    publish(&ch, "", "emails.delay.50", b"reminder", short).await;

    let first = wait_for_message(&ch, "emails").await;
    let second = wait_for_message(&ch, "emails").await;
    let mut got = vec![first.delivery.data.clone(), second.delivery.data.clone()];
    got.sort();
    assert_eq!(got, vec![b"reminder".to_vec(), b"welcome".to_vec()]);
    for m in [&first, &second] {
        let d = deaths(m);
        assert_eq!(
            as_text(d[0].inner().get("reason")).as_deref(),
            Some("expired")
        );
        assert_eq!(
            as_text(d[0].inner().get("queue")).as_deref(),
            Some("emails.delay.50")
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn a_retry_queue_counts_attempts_in_x_death() {
    // Sneakers / Spring retry: work rejects to a retry queue whose TTL sends it back;
    // after three attempts the consumer reads the count and parks the message.
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "payments",
        args(&[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("payments.retry")),
        ]),
    )
    .await
    .unwrap();
    declare(
        &ch,
        "payments.retry",
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(5)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("payments")),
        ]),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "",
        "payments",
        b"charge 42",
        BasicProperties::default(),
    )
    .await;
    let mut attempts = 0;
    let last = loop {
        let m = wait_for_message(&ch, "payments").await;
        attempts += 1;
        let rejected = deaths(&m)
            .iter()
            .find(|d| as_text(d.inner().get("reason")).as_deref() == Some("rejected"))
            .and_then(|d| as_int(d.inner().get("count")))
            .unwrap_or(0);
        assert_eq!(
            rejected,
            attempts - 1,
            "x-death counts every earlier attempt"
        );
        if rejected == 3 {
            ch.basic_ack(m.delivery.delivery_tag, Default::default())
                .await
                .unwrap();
            break m;
        }
        reject(&ch, m.delivery.delivery_tag).await;
    };
    let d = deaths(&last);
    // one entry per queue and reason, the latest first, each with its count
    assert_eq!(d.len(), 2);
    assert_eq!(
        as_text(d[0].inner().get("queue")).as_deref(),
        Some("payments.retry")
    );
    assert_eq!(as_int(d[0].inner().get("count")), Some(3));
    assert_eq!(
        as_text(d[1].inner().get("queue")).as_deref(),
        Some("payments")
    );
    assert_eq!(as_int(d[1].inner().get("count")), Some(3));
    b.stop().await;
}

#[tokio::test]
async fn a_message_expiring_round_a_cycle_is_dropped_where_it_died_before() {
    // a (per-message TTL) -> b (queue TTL) -> fanout to a and a witness: the copy for
    // `a` would go round for ever, so RabbitMQ drops it; the witness gets its copy.
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    fanout(&ch, "b.dlx").await;
    declare(&ch, "witness", FieldTable::default())
        .await
        .unwrap();
    declare(
        &ch,
        "a",
        args(&[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("b")),
        ]),
    )
    .await
    .unwrap();
    declare(
        &ch,
        "b",
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(5)),
            ("x-dead-letter-exchange", text("b.dlx")),
        ]),
    )
    .await
    .unwrap();
    bind(&ch, "a", "b.dlx", "").await;
    bind(&ch, "witness", "b.dlx", "").await;
    let short = BasicProperties::default().with_expiration("5".into());
    publish(&ch, "", "a", b"looping", short).await;
    let seen = wait_for_message(&ch, "witness").await;
    assert_eq!(&seen.delivery.data[..], b"looping");
    assert_eq!(deaths(&seen).len(), 2);
    // A probe through b alone has no history in `a`, so it is delivered there. The
    // dead-letter task works in order, so once the witness has the probe, `a` holds
    // everything it was ever going to get.
    publish(&ch, "", "b", b"probe", BasicProperties::default()).await;
    let probe = wait_for_message(&ch, "witness").await;
    assert_eq!(&probe.delivery.data[..], b"probe");
    let in_a = wait_for_message(&ch, "a").await;
    assert_eq!(&in_a.delivery.data[..], b"probe");
    assert_eq!(depth(&ch, "a").await, 0);
    b.stop().await;
}

#[tokio::test]
async fn two_queues_dead_lettering_into_each_other_under_load_do_not_deadlock() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for (me, other) in [("ping", "pong"), ("pong", "ping")] {
        declare(
            &ch,
            me,
            args(&[
                ("x-max-length", AMQPValue::LongInt(1)),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(other)),
            ]),
        )
        .await
        .unwrap();
    }
    let body = vec![7u8; 1024];
    for i in 0..20_000 {
        let q = if i % 2 == 0 { "ping" } else { "pong" };
        publish(&ch, "", q, &body, BasicProperties::default()).await;
    }
    // both still answer, each holding at most its one message
    within(async {
        assert!(depth(&ch, "ping").await <= 1);
        assert!(depth(&ch, "pong").await <= 1);
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn declaring_a_dead_letter_exchange_needs_write_on_it() {
    let b = start().await;
    // (sets the user up inside Warren: this one does not run against RabbitMQ)
    let state = b.state();
    state.users.add("svc", "pw", vec![]);
    state.permissions.set(
        warren::broker::permissions::Permission::new("svc", "/", "^svc\\.", "^svc\\.", "^svc\\.")
            .unwrap(),
    );
    let conn = b.connect_as("svc", "pw", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "svc.work",
        args(&[("x-dead-letter-exchange", text("svc.dlx"))]),
    )
    .await
    .unwrap();
    let err = declare(
        &ch,
        "svc.other",
        args(&[("x-dead-letter-exchange", text("payments.dlx"))]),
    )
    .await
    .unwrap_err();
    assert_eq!(common::reply_code(&err), Some(403));
    assert!(
        common::reply_text(&err)
            .contains("access to exchange 'payments.dlx' in vhost '/' refused for user 'svc'"),
        "{}",
        common::reply_text(&err)
    );
    b.stop().await;
}
