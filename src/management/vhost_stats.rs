//! The figures `/api/vhosts` shows beside each vhost's name, as RabbitMQ does: its queues'
//! messages (ready, unacknowledged, total, with rates), its `message_stats`, and the bytes
//! its connections received and sent. Asks each of the vhost's queues for its figures;
//! changes nothing.

use serde_json::{json, Map, Value};

use super::rated::insert_rated;
use crate::broker::queue::stats::MessageCounters;
use crate::broker::queue::QueueCmd;
use crate::broker::vhost::VHost;
use crate::broker::BrokerState;

pub(super) async fn vhost_figures(state: &BrokerState, v: &VHost) -> Map<String, Value> {
    let (mut ready, mut unacked) = (0u64, 0u64);
    let mut live = MessageCounters::default();
    for q in v.queue_list() {
        let info = q
            .ask(|reply| QueueCmd::Info { reply })
            .await
            .unwrap_or_default();
        ready += u64::from(info.messages_ready);
        unacked += u64::from(info.messages_unacknowledged);
        live = live.plus(&info.counters);
    }
    let depth = v.stats.depth_rates([ready + unacked, ready, unacked]);
    let mut message_stats = Map::new();
    insert_rated(&mut message_stats, v.stats.message_stats(live));
    let open = state
        .connection_registry
        .list()
        .iter()
        .filter(|c| c.vhost == v.name)
        .fold([0u64; 2], |[r, s], c| {
            let [cr, cs] = c.traffic.octets();
            [r + cr, s + cs]
        });
    let ([recv_oct, send_oct], octet_rates) = v.stats.octets(open);
    let figures = json!({
        "messages": ready + unacked,
        "messages_details": {"rate": depth[0]},
        "messages_ready": ready,
        "messages_ready_details": {"rate": depth[1]},
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": {"rate": depth[2]},
        "message_stats": message_stats,
        "recv_oct": recv_oct,
        "recv_oct_details": {"rate": octet_rates[0]},
        "send_oct": send_oct,
        "send_oct_details": {"rate": octet_rates[1]},
    });
    match figures {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
