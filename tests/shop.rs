//! The shop example (`examples/shop/main.rs`, lapin) run as a test: orders priced over
//! direct reply-to, confirmed into a topic exchange, stock and payment services with manual
//! acks, payment retries with backoff through TTL + dead-letter queues parked after three
//! (counted from `x-death`), unpaid orders cancelled by a delayed message. No order may be
//! lost or handled twice. With `WARREN_TEST_BROKER` (`scripts/against-rabbitmq.sh shop`) it
//! runs against RabbitMQ, where the timeouts take the TTL-queue path.

mod common;

#[path = "../examples/shop/main.rs"]
mod shop;

#[tokio::test(flavor = "multi_thread")]
async fn the_shop_loses_no_order_and_handles_none_twice() {
    let b = common::start().await;
    let report = shop::run(&b.url, 300).await.expect("the shop runs");
    report.print();
    assert!(report.ok(), "lost, duplicated or misrouted orders");
    assert_eq!(report.parked, 15);
    assert_eq!(report.cancelled, 15);
    if b.broker.is_some() {
        assert_eq!(report.delay_mode, "x-delayed-message");
    }
    b.stop().await;
}
