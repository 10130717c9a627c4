//! Frames no well-behaved client sends, written byte for byte: each gets RabbitMQ's reply
//! code, and the broker keeps serving other clients.

mod common;

use common::raw::{Raw, Tune};
use common::start;
use warren::protocol::method::protocol::*;

async fn opened(addr: std::net::SocketAddr) -> Raw {
    let (mut raw, _) = Raw::open(addr, Tune::default()).await;
    raw.open_channel(1).await;
    raw
}

fn publish(exchange: &str, routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: false,
        immediate: false,
    }))
}

fn content_header(channel: u16, body_size: u64) -> Vec<u8> {
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    let mut f = vec![2];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xCE);
    f
}

fn body_frame(channel: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![3];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f.push(0xCE);
    f
}

/// A second client still does a full round trip.
async fn broker_still_serves(addr: std::net::SocketAddr) {
    let mut other = opened(addr).await;
    other
        .send(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "".into(),
                passive: false,
                durable: false,
                exclusive: true,
                auto_delete: false,
                nowait: false,
                arguments: Default::default(),
            })),
        )
        .await;
    let (_, m) = other.recv_method().await;
    assert!(
        matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))),
        "{m:?}"
    );
}

#[tokio::test]
async fn frame_over_frame_max_is_501_before_its_payload_arrives() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    // Only the 7-byte header of a 1 MiB body frame: the broker must not wait for the rest.
    raw.send_bytes(&[3, 0, 1, 0, 0x10, 0, 0]).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 501, "{text}");
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn wrong_frame_end_is_501() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send_bytes(&[8, 0, 0, 0, 0, 0, 0, 0xAB]).await;
    assert_eq!(raw.expect_connection_close().await.0, 501);
    b.stop().await;
}

#[tokio::test]
async fn method_on_a_channel_that_is_not_open_is_504() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(5, publish("", "q")).await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!((code, class, method), (504, 60, 40), "{text}");
    assert_eq!(text, "CHANNEL_ERROR - expected 'channel.open'");
    b.stop().await;
}

#[tokio::test]
async fn second_channel_open_is_504() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    assert_eq!(raw.expect_connection_close().await.0, 504);
    b.stop().await;
}

#[tokio::test]
async fn channel_open_on_a_channel_the_broker_is_closing_is_504() {
    // RabbitMQ keeps the number taken until the client's close-ok for its close
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "nonexisting-exchange".into(),
            kind: "direct".into(),
            passive: true,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: Default::default(),
        })),
    )
    .await;
    // read the broker's close without answering it
    match raw.recv_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => assert_eq!(c.reply_code, 404),
        other => panic!("expected channel.close, got {other:?}"),
    }
    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    let (code, text, class_id, method_id) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str(), class_id, method_id),
        (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    );
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn unknown_class_or_method_is_540() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send_bytes(&[1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE])
        .await;
    assert_eq!(raw.expect_connection_close().await.0, 540);
    b.stop().await;
}

#[tokio::test]
async fn undecodable_method_arguments_are_501_cannot_decode() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    // queue.declare with its arguments cut off
    raw.send_bytes(&[1, 0, 1, 0, 0, 0, 5, 0, 50, 0, 10, 0, 0xCE])
        .await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 501, "{text}");
    assert!(text.starts_with("FRAME_ERROR - cannot decode"), "{text}");
    b.stop().await;
}

#[tokio::test]
async fn content_header_without_a_publish_is_505() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send_bytes(&content_header(1, 3)).await;
    assert_eq!(raw.expect_connection_close().await.0, 505);
    b.stop().await;
}

#[tokio::test]
async fn method_where_content_was_expected_is_505() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(1, publish("", "q")).await;
    raw.send(1, publish("", "q")).await;
    assert_eq!(raw.expect_connection_close().await.0, 505);
    b.stop().await;
}

#[tokio::test]
async fn body_longer_than_its_header_announced_is_a_frame_error() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(1, publish("", "q")).await;
    raw.send_bytes(&content_header(1, 2)).await;
    raw.send_bytes(&body_frame(1, b"abc")).await;
    assert_eq!(raw.expect_connection_close().await.0, 501);
    b.stop().await;
}

#[tokio::test]
async fn heartbeat_on_a_non_zero_channel_is_505() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send_bytes(&[8, 0, 1, 0, 0, 0, 0, 0xCE]).await;
    assert_eq!(raw.expect_connection_close().await.0, 505);
    b.stop().await;
}

#[tokio::test]
async fn publish_on_channel_zero_is_504() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(0, publish("", "q")).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (
            504,
            "CHANNEL_ERROR - unexpected method in connection state running"
        )
    );
    b.stop().await;
}

#[tokio::test]
async fn immediate_publish_is_540() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: false,
            immediate: true,
        })),
    )
    .await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (540, "NOT_IMPLEMENTED - immediate=true")
    );
    b.stop().await;
}

#[tokio::test]
async fn lying_property_lengths_are_refused() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(1, publish("", "q")).await;
    // content-type flag set, but the short string claims 200 bytes and has none
    let payload = [0u8, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 200];
    let mut f = vec![2, 0, 1];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xCE);
    raw.send_bytes(&f).await;
    assert_eq!(raw.expect_connection_close().await.0, 501);
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn closed_channel_id_can_be_opened_again() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    let (_, m) = raw.recv_method().await;
    assert!(matches!(
        m,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))
    ));
    raw.open_channel(1).await;
    b.stop().await;
}

/// A field table nested as deep as a frame allows (thousands of levels): refused with a
/// protocol error, never a stack overflow that would take every other client down too.
fn deeply_nested_table(levels: usize) -> Vec<u8> {
    // innermost first: an empty table, then wrap it `levels` times in {"a": F(...)}
    let mut table = 0u32.to_be_bytes().to_vec();
    for _ in 0..levels {
        let mut entry = vec![1u8, b'a', b'F'];
        entry.extend_from_slice(&table);
        let mut outer = (entry.len() as u32).to_be_bytes().to_vec();
        outer.extend_from_slice(&entry);
        table = outer;
    }
    table
}

#[tokio::test]
async fn deeply_nested_arguments_are_refused_without_crashing() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    // queue.declare("deep", arguments = 15,000 nested tables)
    let mut payload = vec![0, 50, 0, 10, 0, 0, 4, b'd', b'e', b'e', b'p', 0];
    payload.extend_from_slice(&deeply_nested_table(15_000));
    let mut f = vec![1, 0, 1];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xCE);
    raw.send_bytes(&f).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 501, "{text}");
    broker_still_serves(b.addr).await;
    b.stop().await;
}

/// Headers are decoded only to route through a headers exchange; a table nested too deep
/// there matches nothing (as a malformed one does), and neither the broker nor the
/// publisher's connection suffers.
#[tokio::test]
async fn deeply_nested_message_headers_match_nothing_and_crash_nothing() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "hq".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        })),
    )
    .await;
    raw.recv_method().await;
    raw.send(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "hq".into(),
            exchange: "amq.headers".into(),
            routing_key: "".into(),
            nowait: false,
            arguments: {
                let mut t = warren::protocol::method::FieldTable::default();
                t.insert(
                    "region".into(),
                    warren::protocol::method::AMQPValue::LongString("eu".into()),
                );
                t
            },
        })),
    )
    .await;
    raw.recv_method().await;
    raw.send(1, publish("amq.headers", "")).await;
    let mut props = 0x2000u16.to_be_bytes().to_vec(); // headers flag only
    props.extend_from_slice(&deeply_nested_table(15_000));
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&0u64.to_be_bytes());
    payload.extend_from_slice(&props);
    let mut f = vec![2, 0, 1];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xCE);
    raw.send_bytes(&f).await;
    // the same connection still works, and the message was not routed
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "hq".into(),
            no_ack: true,
        })),
    )
    .await;
    let (_, m) = raw.recv_method().await;
    assert!(
        matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))),
        "{m:?}"
    );
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn garbage_in_the_middle_of_a_stream_is_501_and_nothing_else_is_lost() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    // a declared queue with a message in it, from another client, must survive
    let mut other = opened(b.addr).await;
    other
        .send(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "kept".into(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: Default::default(),
            })),
        )
        .await;
    other.recv_method().await;
    other.send(1, publish("", "kept")).await;
    other.send_bytes(&content_header(1, 2)).await;
    other.send_bytes(&body_frame(1, b"ok")).await;

    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: warren\r\n\r\n")
        .await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 501, "{text}");
    assert!(raw.closed_by_broker().await);
    other
        .send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "kept".into(),
                no_ack: true,
            })),
        )
        .await;
    let (_, m) = other.recv_method().await;
    assert!(
        matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))),
        "{m:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_truncated_frame_then_eof_frees_the_connection() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    // half of a 100-byte method frame, then the client goes away
    raw.send_bytes(&[1, 0, 1, 0, 0, 0, 100, 0, 60, 0, 40]).await;
    drop(raw);
    let broker = b.broker.as_ref().unwrap();
    common::within(async {
        while broker.connection_count() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn closing_a_channel_twice_is_504_on_the_second() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    let close = || {
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }))
    };
    raw.send(1, close()).await;
    let (ch, m) = raw.recv_method().await;
    assert!(
        matches!(m, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) && ch == 1,
        "{m:?}"
    );
    raw.send(1, close()).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - expected 'channel.open'")
    );
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn closing_the_connection_twice_gets_a_close_ok_for_each() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    let close = || {
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }))
    };
    raw.send(0, close()).await;
    raw.send(0, close()).await;
    // as RabbitMQ: each close is answered, then nothing else
    for _ in 0..2 {
        let (_, m) = raw.recv_method().await;
        assert!(
            matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))),
            "{m:?}"
        );
    }
    let more = tokio::time::timeout(std::time::Duration::from_millis(500), raw.recv_frame()).await;
    assert!(
        matches!(more, Err(_) | Ok(None)),
        "unexpected frame after close-ok: {more:?}"
    );
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn ack_of_an_unknown_delivery_tag_is_406() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 42,
            multiple: false,
        })),
    )
    .await;
    let (code, text) = raw.expect_channel_close(1).await;
    assert_eq!(
        (code, text.as_str()),
        (406, "PRECONDITION_FAILED - unknown delivery tag 42")
    );
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn body_frame_without_a_publish_is_505() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    raw.send_bytes(&body_frame(1, b"stray")).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 505, "{text}");
    broker_still_serves(b.addr).await;
    b.stop().await;
}

#[tokio::test]
async fn an_unknown_field_type_letter_in_arguments_is_501() {
    let b = start().await;
    let mut raw = opened(b.addr).await;
    // queue.declare "q" with arguments {"x": 'Z' ...}: no such type letter
    let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
    let table = [1, b'x', b'Z', 0, 0, 0, 0];
    payload.extend_from_slice(&(table.len() as u32).to_be_bytes());
    payload.extend_from_slice(&table);
    let mut f = vec![1, 0, 1];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xCE);
    raw.send_bytes(&f).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 501, "{text}");
    broker_still_serves(b.addr).await;
    b.stop().await;
}
