//! Opening and closing connections: the handshake, its failures, tuning, heartbeats and the
//! broker shutting down under its clients.

mod common;

use std::time::Duration;

use common::raw::{start_ok, Raw, Tune};
use common::{start, start_with, within};
use tokio::io::AsyncReadExt;
use warren::protocol::frame::PROTOCOL_HEADER;
use warren::protocol::method::{protocol::*, AMQPValue};
use warren::Config;

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_and_the_socket_closed() {
    let b = start().await;
    let mut raw = Raw::connect(b.addr).await;
    raw.send_bytes(b"AMQP\x01\x01\x08\x00").await;
    let mut got = Vec::new();
    within(raw.stream.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, PROTOCOL_HEADER);
    b.stop().await;
}

#[tokio::test]
async fn start_advertises_rabbitmq_capabilities_and_mechanisms() {
    let b = start().await;
    let mut raw = Raw::connect(b.addr).await;
    raw.send_bytes(PROTOCOL_HEADER).await;
    let (_, m) = raw.recv_method().await;
    let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = m else {
        panic!("expected connection.start")
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = String::from_utf8(start.mechanisms.as_bytes().to_vec()).unwrap();
    assert!(mechanisms.contains("PLAIN") && mechanisms.contains("AMQPLAIN"));
    let props = start.server_properties.inner();
    assert!(props.contains_key("product") && props.contains_key("version"));
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!("no capabilities table")
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "{cap}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_with_403() {
    let b = start().await;
    let mut raw = Raw::connect(b.addr).await;
    raw.send_bytes(PROTOCOL_HEADER).await;
    raw.recv_method().await;
    raw.send(0, start_ok("PLAIN", b"\0guest\0wrong")).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 403);
    assert!(
        text.starts_with("ACCESS_REFUSED - Login was refused"),
        "{text}"
    );
    assert!(raw.closed_by_broker().await);
    b.stop().await;
}

#[tokio::test]
async fn amqplain_login_works() {
    let b = start().await;
    let mut raw = Raw::connect(b.addr).await;
    raw.send_bytes(PROTOCOL_HEADER).await;
    raw.recv_method().await;
    let mut response = vec![];
    for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
        response.push(k.len() as u8);
        response.extend_from_slice(k.as_bytes());
        response.push(b'S');
        response.extend_from_slice(&(v.len() as u32).to_be_bytes());
        response.extend_from_slice(v.as_bytes());
    }
    raw.send(0, start_ok("AMQPLAIN", &response)).await;
    let (_, m) = raw.recv_method().await;
    assert!(
        matches!(m, AMQPClass::Connection(connection::AMQPMethod::Tune(_))),
        "{m:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn unknown_vhost_is_530() {
    let b = start().await;
    let err = lapin::Connection::connect(
        &format!("amqp://guest:guest@{}/nope", b.addr),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(common::reply_code(&err), Some(530), "{err}");
    assert!(common::reply_text(&err).contains("vhost nope not found"));
    b.stop().await;
}

#[tokio::test]
async fn tune_offers_the_configured_limits_and_the_client_may_lower_them() {
    let config = Config {
        channel_max: 100,
        frame_max: 65536,
        heartbeat: 30,
        ..Config::default()
    };
    let b = start_with(config).await;
    let (mut raw, tune) = Raw::open(
        b.addr,
        Tune {
            channel_max: 10,
            frame_max: 8192,
            heartbeat: 0,
        },
    )
    .await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (100, 65536, 30)
    );
    // channel_max counts open channels (as RabbitMQ): any number is fine, the eleventh is not
    for ch in (1..=10).map(|i| 65535 - i) {
        raw.open_channel(ch).await;
    }
    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str(), class, method),
        (
            530,
            "NOT_ALLOWED - number of channels opened (10) has reached the negotiated channel_max (10)",
            0,
            0
        )
    );
    b.stop().await;
}

#[tokio::test]
async fn defaults_are_rabbitmqs_limits() {
    let b = start().await;
    let (_raw, tune) = Raw::open(b.addr, Tune::default()).await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131072, 60)
    );
    b.stop().await;
}

#[tokio::test]
async fn silent_client_is_dropped_after_two_missed_heartbeats() {
    let b = start().await;
    let (mut raw, _) = Raw::open(
        b.addr,
        Tune {
            heartbeat: 1,
            ..Tune::default()
        },
    )
    .await;
    // The broker sends heartbeats meanwhile; after ~2 s of our silence it hangs up.
    let mut heartbeats = 0;
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(f) = raw.recv_frame().await {
            if f.kind == 8 {
                heartbeats += 1;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "broker kept the silent connection open");
    assert!(heartbeats >= 1, "broker sent no heartbeat");
    b.stop().await;
}

#[tokio::test]
async fn client_that_never_finishes_the_handshake_is_closed() {
    let config = Config {
        handshake_timeout: 300,
        ..Config::default()
    };
    let b = start_with(config).await;
    let mut raw = Raw::connect(b.addr).await;
    assert!(raw.closed_by_broker().await);
    b.stop().await;
}

#[tokio::test]
async fn client_close_is_answered_with_close_ok() {
    let b = start().await;
    let (mut raw, _) = Raw::open(b.addr, Tune::default()).await;
    raw.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
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
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))
    ));
    b.stop().await;
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_320() {
    let b = start().await;
    let (mut raw, _) = Raw::open(b.addr, Tune::default()).await;
    let broker = b.broker.as_ref().unwrap();
    assert_eq!(broker.connection_count(), 1);
    let stopping = tokio::spawn(async move { b.stop().await });
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 320);
    assert!(text.starts_with("CONNECTION_FORCED"), "{text}");
    within(stopping).await.unwrap();
}

#[tokio::test]
async fn embedded_broker_reports_its_bound_port() {
    let b = start().await;
    assert_ne!(b.addr.port(), 0);
    let conn = b.connect().await;
    assert!(conn.status().connected());
    conn.close(200, "bye".into()).await.unwrap();
    b.stop().await;
}
