//! Topic routing cost against the number of bindings: a shop's order events exchange with
//! 10, 1,000 and 10,000 wildcard bindings (one per store and event kind, plus a few
//! catch-alls), routing the same keys. With the trie the cost should barely move with the
//! binding count. Run: `cargo bench --bench topic_routing`.

use std::time::Instant;

use amq_protocol::types::FieldTable;
use warren::broker::exchange::{Destination, Exchange, ExchangeKind};

fn exchange(bindings: usize) -> Exchange {
    let x = Exchange::new(
        "orders",
        ExchangeKind::Topic,
        true,
        false,
        false,
        FieldTable::default(),
    );
    let kinds = ["created", "paid", "shipped", "cancelled", "refunded"];
    for i in 0..bindings {
        let key = match i % 4 {
            0 => format!("order.store{i}.{}", kinds[i % kinds.len()]),
            1 => format!("order.store{i}.*"),
            2 => format!("*.store{i}.#"),
            _ => format!("order.#.store{i}"),
        };
        x.bind(
            Destination::Queue(format!("q{i}").into()),
            &key,
            FieldTable::default(),
        );
    }
    x.bind(
        Destination::Queue("audit".into()),
        "#",
        FieldTable::default(),
    );
    x.bind(
        Destination::Queue("created".into()),
        "order.*.created",
        FieldTable::default(),
    );
    x
}

fn main() {
    let keys: Vec<String> = (0..64)
        .map(|i| format!("order.store{}.created", i * 7))
        .collect();
    let rounds = 20_000;
    let mut base = None;
    for n in [10, 1_000, 10_000] {
        let x = exchange(n);
        let bind_start = Instant::now();
        let extra = Destination::Queue("extra".into());
        for i in 0..1000 {
            x.bind(
                extra.clone(),
                &format!("bench.{i}.#"),
                FieldTable::default(),
            );
        }
        for i in 0..1000 {
            x.unbind(&extra, &format!("bench.{i}.#"), &FieldTable::default());
        }
        let bind_ns = bind_start.elapsed().as_nanos() as f64 / 2000.0;
        let mut out = Vec::new();
        let start = Instant::now();
        for r in 0..rounds {
            out.clear();
            x.route(&keys[r % keys.len()], &mut || None, &mut out);
        }
        let ns = start.elapsed().as_nanos() as f64 / rounds as f64;
        let ratio = ns / *base.get_or_insert(ns);
        println!(
            "{n:>6} bindings: {ns:>8.0} ns per route ({ratio:.2}x the 10-binding case), {bind_ns:>6.0} ns per bind or unbind"
        );
    }
}
