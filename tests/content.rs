//! Message content reaches consumers exactly as published: every basic property, nested
//! header tables with every field type RabbitMQ uses, byte for byte.

mod common;

use common::raw::{Raw, Tune};
use common::start;
use warren::protocol::content::{encode_content, parse_header};
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER};
use warren::protocol::method::{self, protocol::*};

fn short(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// A headers table using every type letter RabbitMQ knows, with a nested table and array.
fn rich_table() -> Vec<u8> {
    let mut t = vec![];
    let mut field = |name: &str, kind: u8, value: &[u8]| {
        short(&mut t, name);
        t.push(kind);
        t.extend_from_slice(value);
    };
    field("bool", b't', &[1]);
    field("i8", b'b', &[0xFE]);
    field("u8", b'B', &[200]);
    field("i16", b's', &(-2i16).to_be_bytes());
    field("u16", b'u', &60000u16.to_be_bytes());
    field("i32", b'I', &(-70000i32).to_be_bytes());
    field("u32", b'i', &4_000_000_000u32.to_be_bytes());
    field("i64", b'l', &(-5i64).to_be_bytes());
    field("f32", b'f', &1.5f32.to_be_bytes());
    field("f64", b'd', &2.25f64.to_be_bytes());
    field("dec", b'D', &[2, 0, 0, 1, 0]);
    field("str", b'S', &[0, 0, 0, 3, b'a', b'b', b'c']);
    field("ts", b'T', &1_700_000_000u64.to_be_bytes());
    field("void", b'V', &[]);
    field("bytes", b'x', &[0, 0, 0, 2, 0xDE, 0xAD]);
    let mut inner = vec![];
    short(&mut inner, "deep");
    inner.push(b'S');
    inner.extend_from_slice(&[0, 0, 0, 1, b'!']);
    let mut nested = (inner.len() as u32).to_be_bytes().to_vec();
    nested.extend_from_slice(&inner);
    field("table", b'F', &nested);
    let array = [b'I', 0, 0, 0, 7, b'S', 0, 0, 0, 1, b'z'];
    let mut arr = (array.len() as u32).to_be_bytes().to_vec();
    arr.extend_from_slice(&array);
    field("array", b'A', &arr);
    let mut out = (t.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&t);
    out
}

/// All 14 basic properties set.
fn all_properties() -> Vec<u8> {
    let mut p = 0xFFFCu16.to_be_bytes().to_vec();
    short(&mut p, "application/json");
    short(&mut p, "gzip");
    p.extend_from_slice(&rich_table());
    p.push(2); // delivery-mode
    p.push(7); // priority
    short(&mut p, "corr-1");
    short(&mut p, "reply.here");
    short(&mut p, "60000");
    short(&mut p, "msg-42");
    p.extend_from_slice(&1_700_000_123u64.to_be_bytes());
    short(&mut p, "order.created");
    short(&mut p, "guest");
    short(&mut p, "shop");
    short(&mut p, "cluster-x");
    p
}

#[tokio::test]
async fn all_fourteen_properties_and_nested_headers_arrive_byte_identical() {
    let b = start().await;
    let (mut raw, _) = Raw::open(
        b.addr,
        Tune {
            frame_max: 4096,
            ..Tune::default()
        },
    )
    .await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "props".into(),
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
    let props = all_properties();
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
    let mut out = bytes::BytesMut::new();
    method::encode(
        &mut out,
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "props".into(),
            mandatory: false,
            immediate: false,
        })),
    );
    encode_content(&mut out, 1, &props, &body, 4096);
    raw.send_bytes(&out).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "props".into(),
            no_ack: true,
        })),
    )
    .await;
    let (_, m) = raw.recv_method().await;
    assert!(
        matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))),
        "{m:?}"
    );
    let header = raw.recv_frame().await.unwrap();
    assert_eq!(header.kind, FRAME_HEADER);
    let header = parse_header(header.payload).unwrap();
    assert_eq!(&header.properties[..], &props[..]);
    assert_eq!(header.body_size, body.len() as u64);
    let mut got = vec![];
    while got.len() < body.len() {
        let f = raw.recv_frame().await.unwrap();
        assert_eq!(f.kind, FRAME_BODY);
        assert!(
            f.payload.len() <= 4096 - 8,
            "body frame over the negotiated frame_max"
        );
        got.extend_from_slice(&f.payload);
    }
    assert_eq!(got, body);
    b.stop().await;
}
