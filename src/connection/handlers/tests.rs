//! Handlers driven alone: a broker without a store or a socket, one session and one
//! channel; what a handler sends is read back from the session's outgoing frames.

use amq_protocol::protocol::{basic, exchange, queue, AMQPClass};
use amq_protocol::types::{FieldTable, ShortString};
use bytes::{Bytes, BytesMut};

use super::*;
use crate::broker::BrokerState;
use crate::config::Config;
use crate::protocol::{frame, method, reply};
use crate::store::Recovered;

const CHANNEL: u16 = 1;

fn session() -> Session {
    let (broker, _) = BrokerState::new(Config::default(), None, Recovered::default());
    let vhost = broker.vhost("/").expect("the default vhost exists");
    Session::new(7, broker, vhost, "guest".into(), false, 131_072)
}

fn channel() -> ChannelState {
    ChannelState::open(CHANNEL, 1, 7)
}

/// The methods the handlers queued for the client, in order.
fn sent(s: &mut Session) -> Vec<AMQPClass> {
    let mut buf = BytesMut::from(&s.out.take()[..]);
    let mut methods = Vec::new();
    while let Some(f) = frame::split(&mut buf, 0).expect("well-formed frames") {
        if f.kind == frame::FRAME_METHOD {
            assert_eq!(f.channel, CHANNEL);
            methods.push(method::decode(&f.payload).expect("a method we can decode"));
        }
    }
    methods
}

fn declare(name: &str) -> queue::Declare {
    queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }
}

async fn publish(s: &mut Session, ch: &mut ChannelState, routing_key: &str, body: &'static [u8]) {
    basic_publish(s, ch, "", routing_key, false, false).expect("publish accepted");
    // class 60, weight 0, the body size, and a property list with no properties
    let mut header = Vec::new();
    header.extend_from_slice(&60u16.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes());
    header.extend_from_slice(&(body.len() as u64).to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes());
    let header = Bytes::from(header);
    content_header(s, ch, header)
        .await
        .expect("header accepted");
    content_body(s, ch, Bytes::from_static(body))
        .await
        .expect("body accepted");
}

#[tokio::test]
async fn a_server_named_queue_becomes_the_channels_last_queue_for_bind() {
    let (mut s, mut ch) = (session(), channel());
    queue_declare(&mut s, &mut ch, declare("")).await.unwrap();
    let [AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))] = &sent(&mut s)[..] else {
        panic!("expected one declare-ok");
    };
    assert!(ok.queue.as_str().starts_with("amq.gen-"));
    assert_eq!(ok.queue.as_str().len(), "amq.gen-".len() + 22);
    assert_eq!(ch.last_queue.as_deref(), Some(ok.queue.as_str()));

    // queue.bind with an empty queue and key binds that queue under its own name
    let bind = queue::Bind {
        queue: ShortString::from(""),
        exchange: "amq.direct".into(),
        routing_key: "".into(),
        nowait: false,
        arguments: FieldTable::default(),
    };
    queue_bind(&mut s, &mut ch, bind).await.unwrap();
    assert!(matches!(
        &sent(&mut s)[..],
        [AMQPClass::Queue(queue::AMQPMethod::BindOk(_))]
    ));
    let mut targets = Vec::new();
    let direct = s.vhost.exchange("amq.direct").unwrap();
    s.vhost
        .route(&direct, ok.queue.as_str(), &mut || None, &mut targets);
    assert_eq!(targets.len(), 1);
}

#[tokio::test]
async fn the_default_exchange_cannot_be_declared_even_passively() {
    let (mut s, mut ch) = (session(), channel());
    for passive in [false, true] {
        let d = exchange::Declare {
            exchange: "".into(),
            kind: "direct".into(),
            passive,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        };
        let e = exchange_declare(&mut s, &mut ch, d).await.unwrap_err();
        assert_eq!(e.code, reply::ACCESS_REFUSED);
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - operation not permitted on the default exchange"
        );
    }
    assert!(sent(&mut s).is_empty());
}

#[tokio::test]
async fn a_message_taken_with_get_is_unacked_until_its_tag_is_acked() {
    let (mut s, mut ch) = (session(), channel());
    queue_declare(&mut s, &mut ch, declare("orders"))
        .await
        .unwrap();
    publish(&mut s, &mut ch, "orders", b"order 1").await;
    sent(&mut s);

    let get = basic::Get {
        queue: "orders".into(),
        no_ack: false,
    };
    basic_get(&mut s, &mut ch, get).await.unwrap();
    let [AMQPClass::Basic(basic::AMQPMethod::GetOk(ok))] = &sent(&mut s)[..] else {
        panic!("expected one get-ok");
    };
    assert_eq!((ok.delivery_tag, ok.message_count), (1, 0));
    assert_eq!(ch.unacked.len(), 1);

    let e = basic_settle(&mut ch, 5, false, Settle::Ack)
        .await
        .unwrap_err();
    assert_eq!(e.text, "PRECONDITION_FAILED - unknown delivery tag 5");
    basic_settle(&mut ch, 1, false, Settle::Ack).await.unwrap();
    assert!(ch.unacked.is_empty());
}

#[tokio::test]
async fn a_channel_is_in_confirm_mode_or_tx_mode_never_both() {
    let (mut s, mut ch) = (session(), channel());
    confirm_select(&mut s, &mut ch, false).unwrap();
    let e = tx_select(&mut s, &mut ch).unwrap_err();
    assert_eq!(e.code, reply::PRECONDITION_FAILED);
    assert_eq!(
        e.text,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    );

    let mut other = ChannelState::open(2, 2, 7);
    tx_select(&mut s, &mut other).unwrap();
    let e = confirm_select(&mut s, &mut other, true).unwrap_err();
    assert_eq!(
        e.text,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    );
}

#[tokio::test]
async fn a_confirmed_publish_to_a_transient_queue_is_acked_in_this_wake_up() {
    let (mut s, mut ch) = (session(), channel());
    queue_declare(&mut s, &mut ch, declare("stock"))
        .await
        .unwrap();
    confirm_select(&mut s, &mut ch, false).unwrap();
    publish(&mut s, &mut ch, "stock", b"sku 42").await;
    assert_eq!(s.confirm_dirty, vec![CHANNEL]);
    let mut acks = Vec::new();
    ch.confirms
        .as_mut()
        .unwrap()
        .emit(|tag, multiple, ack| acks.push((tag, multiple, ack)));
    assert_eq!(acks, vec![(1, false, true)]);
}

#[tokio::test]
async fn consuming_from_a_missing_queue_is_404_and_registers_nothing() {
    let (mut s, mut ch) = (session(), channel());
    let consume = basic::Consume {
        queue: "payments".into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    let e = basic_consume(&mut s, &mut ch, consume).await.unwrap_err();
    assert_eq!(e.code, reply::NOT_FOUND);
    assert_eq!(e.text, "NOT_FOUND - no queue 'payments' in vhost '/'");
    assert!(ch.consumers.is_empty());
}
