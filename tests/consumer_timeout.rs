//! A payment consumer hangs on a message without acknowledging it: as RabbitMQ's
//! `consumer_timeout`, the broker closes its channel with 406 and RabbitMQ's text, and the
//! order goes back to the queue for a healthy consumer instead of waiting forever.

mod common;

use common::amqp::{declare, publish, stuck_consumer, wait_for_message};
use common::{reply_code, reply_text, start_with, within};
use futures_lite::StreamExt;
use lapin::options::BasicGetOptions;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren::Config;

fn config() -> Config {
    Config {
        consumer_timeout: 300,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_that_never_acks_loses_its_channel_and_the_order_is_requeued() {
    let b = start_with(config()).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "payments", FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "", "payments", b"order-7", BasicProperties::default()).await;

    let (mut consumer, delivery) = stuck_consumer(&conn, "payments").await;
    assert_eq!(delivery.data, b"order-7");
    // no ack: the channel is closed once the delivery is older than the timeout
    let err = within(async {
        loop {
            match consumer.next().await {
                Some(Err(e)) => return e,
                None => panic!("consumer ended without the channel's error"),
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 300 ms. This timeout value can be configured, see consumers doc guide to learn more"
    );
    let again = wait_for_message(&ch, "payments").await;
    assert_eq!(again.delivery.data, b"order-7");
    assert!(again.delivery.redelivered);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_basic_get_left_unacknowledged_times_out_the_same_way() {
    let b = start_with(config()).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "stock", FieldTable::default()).await.unwrap();
    publish(&ch, "", "stock", b"sku-1", BasicProperties::default()).await;
    let got = ch
        .basic_get("stock".into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(got.delivery.data, b"sku-1");
    // the channel is gone once the timeout passed: what it does next is refused
    let other = conn.create_channel().await.unwrap();
    let again = wait_for_message(&other, "stock").await;
    assert!(again.delivery.redelivered);
    assert!(!ch.status().connected());
    b.stop().await;
}
