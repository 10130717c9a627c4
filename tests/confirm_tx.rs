//! Publisher confirms and transactions: a shop that must know each order reached the broker,
//! and one that publishes and acknowledges atomically.

mod common;

use common::raw::{Raw, Tune};
use common::{reply_code, start, within};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use warren::protocol::frame::FRAME_METHOD;
use warren::protocol::method::{self, protocol::*};

#[tokio::test]
async fn every_publish_is_confirmed_in_order_on_many_channels() {
    let b = start().await;
    let conn = b.connect().await;
    let setup = conn.create_channel().await.unwrap();
    setup
        .queue_declare(
            "confirmed".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut tasks = vec![];
    for _ in 0..8 {
        let ch = conn.create_channel().await.unwrap();
        tasks.push(tokio::spawn(async move {
            ch.confirm_select(Default::default()).await.unwrap();
            let mut confirms = vec![];
            for i in 0..200u32 {
                confirms.push(
                    ch.basic_publish(
                        "".into(),
                        "confirmed".into(),
                        Default::default(),
                        &i.to_be_bytes(),
                        BasicProperties::default(),
                    )
                    .await
                    .unwrap(),
                );
            }
            for c in confirms {
                assert!(matches!(c.await.unwrap(), Confirmation::Ack(None)));
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let q = setup
        .queue_declare(
            "confirmed".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 1600);
    b.stop().await;
}

/// With a raw client: acks carry increasing tags, multiple=true covers a run of publishes,
/// and together they cover every sequence number exactly once.
#[tokio::test]
async fn confirms_are_cumulative_and_never_overtake() {
    let b = start().await;
    let (mut raw, _) = Raw::open(b.addr, Tune::default()).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    raw.recv_method().await;
    let mut burst = bytes::BytesMut::new();
    for _ in 0..100 {
        method::encode(
            &mut burst,
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "amq.fanout".into(),
                routing_key: "".into(),
                mandatory: false,
                immediate: false,
            })),
        );
        warren::protocol::content::encode_content(&mut burst, 1, &[0, 0], b"x", 131072);
    }
    raw.send_bytes(&burst).await;
    let mut confirmed = 0u64;
    while confirmed < 100 {
        let f = raw.recv_frame().await.unwrap();
        assert_eq!(f.kind, FRAME_METHOD);
        match method::decode(&f.payload).unwrap() {
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                assert!(a.delivery_tag > confirmed, "ack went backwards");
                if !a.multiple {
                    assert_eq!(a.delivery_tag, confirmed + 1);
                }
                confirmed = a.delivery_tag;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(confirmed, 100);
    b.stop().await;
}

#[tokio::test]
async fn tx_commit_publishes_and_acks_together_and_rollback_discards() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("ledger".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare("inbox".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "inbox".into(),
        Default::default(),
        b"order",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let reader = conn.create_channel().await.unwrap();

    ch.tx_select().await.unwrap();
    let order = within(ch.basic_get("inbox".into(), Default::default()))
        .await
        .unwrap()
        .unwrap();
    ch.basic_publish(
        "".into(),
        "ledger".into(),
        Default::default(),
        b"entry",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    order.delivery.acker.ack(Default::default()).await.unwrap();
    // nothing visible before commit
    assert!(reader
        .basic_get("ledger".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
    ch.tx_rollback().await.unwrap();
    assert!(reader
        .basic_get("ledger".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());

    ch.basic_publish(
        "".into(),
        "ledger".into(),
        Default::default(),
        b"entry",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    ch.basic_ack(order.delivery.delivery_tag, Default::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    let entry = reader
        .basic_get("ledger".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.delivery.data, b"entry");
    // the inbox message was acked by the commit: recovering requeues nothing
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    assert!(reader
        .basic_get("inbox".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
    b.stop().await;
}

#[tokio::test]
async fn commit_without_select_is_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch.tx_commit().await.unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    b.stop().await;
}

#[tokio::test]
async fn confirm_and_tx_modes_exclude_each_other() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let err = ch.tx_select().await.unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    b.stop().await;
}

#[tokio::test]
async fn unknown_delivery_tag_closes_the_channel_406() {
    let b = start().await;
    let (mut raw, _) = Raw::open(b.addr, Tune::default()).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 99,
            multiple: false,
        })),
    )
    .await;
    let (code, text) = raw.expect_channel_close(1).await;
    assert_eq!(
        (code, text.as_str()),
        (406, "PRECONDITION_FAILED - unknown delivery tag 99")
    );
    // the connection is still usable
    raw.open_channel(2).await;
    b.stop().await;
}
