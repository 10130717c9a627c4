//! Random but valid AMQP sequences over a small world (three queues, two exchanges, two
//! connections with two channels each), mixed with deliberate errors, played against the
//! broker under test and the reference. A difference is confirmed by playing it again,
//! shrunk by dropping steps while it persists, and saved with the reference's answers.
//! Nothing time-based is generated (no short TTLs or expiries): a difference must come
//! from behaviour, not from scheduling.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::scenario::{Scenario, Step};
use crate::{difference, play, Known};

pub struct Settings<'a> {
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub seconds: u64,
    pub seed: u64,
    pub steps: usize,
    pub known: &'a Known,
    pub save: &'a Path,
}

const QUEUES: &[&str] = &["q1", "q2", "q3", ""];
const EXCHANGES: &[&str] = &[
    "x1",
    "x2",
    "",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "missing",
];
const KEYS: &[&str] = &["k1", "k2", "#", "k1.*", "q1", "q2"];
const TAGS: &[&str] = &["t1", "t2"];
const TYPES: &[&str] = &["direct", "fanout", "topic", "headers"];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

fn flags(rng: &mut StdRng, names: &[&str], p: f64) -> Vec<String> {
    names
        .iter()
        .filter(|_| rng.gen_bool(p))
        .map(|s| s.to_string())
        .collect()
}

fn queue_arguments(rng: &mut StdRng) -> Option<Map<String, Value>> {
    let mut m = Map::new();
    if rng.gen_bool(0.15) {
        m.insert("x-max-length".into(), json!(rng.gen_range(0..3)));
    }
    if rng.gen_bool(0.1) {
        m.insert(
            "x-overflow".into(),
            json!(pick(rng, &["drop-head", "reject-publish", "bogus"])),
        );
    }
    if rng.gen_bool(0.1) {
        m.insert(
            "x-dead-letter-exchange".into(),
            json!(pick(rng, &["x1", "x2"])),
        );
    }
    if rng.gen_bool(0.1) {
        m.insert(
            "x-message-ttl".into(),
            json!(pick(rng, &["60000", "-1"]).parse::<i64>().unwrap_or(0)),
        );
    }
    if rng.gen_bool(0.05) {
        m.insert(
            "x-queue-type".into(),
            json!(pick(rng, &["classic", "quorum", "bogus"])),
        );
    }
    if rng.gen_bool(0.05) {
        m.insert("x-max-priority".into(), json!(rng.gen_range(0..12)));
    }
    (!m.is_empty()).then_some(m)
}

fn properties(rng: &mut StdRng) -> Option<Map<String, Value>> {
    if rng.gen_bool(0.5) {
        return None;
    }
    let mut m = Map::new();
    let mut maybe = |rng: &mut StdRng, k: &str, v: Value| {
        if rng.gen_bool(0.3) {
            m.insert(k.into(), v);
        }
    };
    maybe(rng, "content_type", json!("application/json"));
    maybe(rng, "content_encoding", json!("utf-8"));
    let (mode, priority) = (rng.gen_range(1..3), rng.gen_range(0..10));
    maybe(rng, "delivery_mode", json!(mode));
    maybe(rng, "priority", json!(priority));
    maybe(rng, "correlation_id", json!("c-1"));
    maybe(rng, "reply_to", json!("q2"));
    maybe(rng, "expiration", json!("60000"));
    maybe(rng, "message_id", json!("m-1"));
    maybe(rng, "timestamp", json!(1_700_000_000));
    maybe(rng, "type", json!("order.created"));
    let user = if rng.gen_bool(0.8) {
        "guest"
    } else {
        "mallory"
    };
    maybe(rng, "user_id", json!(user));
    maybe(rng, "app_id", json!("shop"));
    maybe(
        rng,
        "headers",
        json!({"a": 1, "b": "two", "nested": {"x": true}, "list": [1, "s"]}),
    );
    Some(m)
}

fn random_step(rng: &mut StdRng) -> Step {
    let c = if rng.gen_bool(0.8) { 0 } else { 1 };
    let ch = if rng.gen_bool(0.8) { 1 } else { 2 };
    let weights: &[(&str, u32)] = &[
        ("queue.declare", 10),
        ("exchange.declare", 5),
        ("queue.bind", 8),
        ("queue.unbind", 2),
        ("exchange.bind", 2),
        ("exchange.delete", 2),
        ("queue.delete", 3),
        ("queue.purge", 2),
        ("basic.publish", 18),
        ("basic.get", 8),
        ("basic.consume", 6),
        ("basic.cancel", 2),
        ("basic.ack", 6),
        ("basic.nack", 3),
        ("basic.reject", 3),
        ("basic.qos", 3),
        ("basic.recover", 2),
        ("confirm.select", 2),
        ("tx.select", 2),
        ("tx.commit", 2),
        ("tx.rollback", 1),
        ("channel.close", 2),
        ("channel.open", 4),
        ("channel.flow", 1),
        ("connection.close", 1),
    ];
    let total: u32 = weights.iter().map(|w| w.1).sum();
    let mut roll = rng.gen_range(0..total);
    let op = weights
        .iter()
        .find(|(_, w)| {
            if roll < *w {
                true
            } else {
                roll -= w;
                false
            }
        })
        .map(|w| w.0)
        .unwrap_or("basic.publish");
    let mut s = Step::new(c, ch, op);
    match op {
        "queue.declare" => {
            s.queue = Some(pick(rng, QUEUES).into());
            s.flags = flags(
                rng,
                &["durable", "exclusive", "auto_delete", "passive"],
                0.2,
            );
            s.arguments = queue_arguments(rng);
        }
        "exchange.declare" => {
            s.exchange = Some(pick(rng, EXCHANGES).into());
            s.kind = Some(pick(rng, TYPES).into());
            s.flags = flags(
                rng,
                &["durable", "auto_delete", "passive", "internal"],
                0.15,
            );
        }
        "queue.bind" | "queue.unbind" => {
            s.queue = Some(pick(rng, QUEUES).into());
            s.exchange = Some(pick(rng, EXCHANGES).into());
            s.routing_key = Some(pick(rng, KEYS).into());
            if rng.gen_bool(0.2) {
                let how = pick(rng, &["all", "any", "bogus"]);
                let mut m = Map::new();
                m.insert("x-match".into(), json!(how));
                m.insert("a".into(), json!(1));
                s.arguments = Some(m);
            }
        }
        "exchange.bind" => {
            s.exchange = Some(pick(rng, EXCHANGES).into());
            s.destination = Some(pick(rng, EXCHANGES).into());
            s.routing_key = Some(pick(rng, KEYS).into());
        }
        "exchange.delete" => {
            s.exchange = Some(pick(rng, EXCHANGES).into());
            s.flags = flags(rng, &["if_unused"], 0.3);
        }
        "queue.delete" => {
            s.queue = Some(pick(rng, QUEUES).into());
            s.flags = flags(rng, &["if_unused", "if_empty"], 0.3);
        }
        "queue.purge" => s.queue = Some(pick(rng, QUEUES).into()),
        "basic.publish" => {
            s.exchange = Some(pick(rng, EXCHANGES).into());
            s.routing_key = Some(pick(rng, KEYS).into());
            s.flags = flags(rng, &["mandatory"], 0.3);
            if rng.gen_bool(0.05) {
                // larger than a frame: several body frames each way
                s.body_size = Some(rng.gen_range(131_000..300_000));
            } else {
                s.body = Some(format!("m{}", rng.gen_range(0..100)));
            }
            s.props = properties(rng);
        }
        "basic.get" => {
            s.queue = Some(pick(rng, QUEUES).into());
            s.flags = flags(rng, &["no_ack"], 0.3);
        }
        "basic.consume" => {
            s.queue = Some(pick(rng, QUEUES).into());
            s.tag = Some(pick(rng, TAGS).into());
            s.flags = flags(rng, &["no_ack", "exclusive", "no_local"], 0.25);
            if rng.gen_bool(0.1) {
                let mut m = Map::new();
                m.insert("x-priority".into(), json!(pick(rng, &["5", "x"])));
                if let Some(Value::String(p)) = m.get("x-priority") {
                    if let Ok(n) = p.parse::<i64>() {
                        m.insert("x-priority".into(), json!(n));
                    }
                }
                s.arguments = Some(m);
            }
        }
        "basic.cancel" => s.tag = Some(pick(rng, TAGS).into()),
        "basic.ack" | "basic.nack" | "basic.reject" => {
            s.delivery_tag = Some(rng.gen_range(0..4));
            s.flags = flags(rng, &["multiple", "requeue"], 0.4);
            if op == "basic.reject" {
                s.flags.retain(|f| f != "multiple");
            }
            if op == "basic.ack" {
                s.flags.retain(|f| f != "requeue");
            }
        }
        "basic.qos" => {
            s.prefetch = Some(rng.gen_range(0..3));
            s.flags = flags(rng, &["global"], 0.2);
        }
        "basic.recover" => s.flags = flags(rng, &["requeue"], 0.7),
        "channel.flow" => s.flags = vec!["active".into()],
        "connection.close" => s.ch = 0,
        _ => {}
    }
    // Most steps first reopen what an earlier error closed, so a sequence keeps testing
    // after its first error; the rest test what a closed channel answers.
    if rng.gen_bool(0.9) {
        s.flags.push("reopen".into());
    }
    s
}

/// A sequence: both connections open with channels 1 and 2, then random steps.
fn sequence(rng: &mut StdRng, n: usize) -> Vec<Step> {
    let mut steps = vec![
        Step::new(0, 0, "connection.open"),
        Step::new(0, 1, "channel.open"),
        Step::new(0, 2, "channel.open"),
        Step::new(1, 0, "connection.open"),
        Step::new(1, 1, "channel.open"),
        Step::new(1, 2, "channel.open"),
    ];
    steps.extend((0..n).map(|_| random_step(rng)));
    steps
}

async fn differs(s: &Settings<'_>, scenario: &Scenario) -> Option<String> {
    let ra = play(s.a, scenario).await;
    let rb = play(s.b, scenario).await;
    difference(scenario, &rb, &ra, s.known)
}

/// Drop steps while the difference persists (and is seen twice, so it is not scheduling).
async fn shrink(s: &Settings<'_>, mut scenario: Scenario, deadline: Instant) -> Scenario {
    let mut i = scenario.steps.len();
    while i > 0 && Instant::now() < deadline {
        i -= 1;
        let mut smaller = scenario.clone();
        smaller.steps.remove(i);
        if differs(s, &smaller).await.is_some() && differs(s, &smaller).await.is_some() {
            scenario = smaller;
        }
    }
    scenario
}

pub async fn run(s: Settings<'_>) -> Result<bool, String> {
    let start = Instant::now();
    let end = start + Duration::from_secs(s.seconds);
    let mut rng = StdRng::seed_from_u64(s.seed);
    let (mut tried, mut found) = (0u64, 0u64);
    println!("seed {}", s.seed);
    while Instant::now() < end {
        let case_seed: u64 = rng.gen();
        let mut case_rng = StdRng::seed_from_u64(case_seed);
        let scenario = Scenario {
            name: format!("generated-{case_seed:016x}"),
            about: format!("found by warren-diff generate, seed {case_seed:016x}"),
            steps: sequence(&mut case_rng, s.steps),
            ..Scenario::default()
        };
        tried += 1;
        if differs(&s, &scenario).await.is_none() || differs(&s, &scenario).await.is_none() {
            continue;
        }
        found += 1;
        // shrinking may take longer than the run's budget: it gets a bound of its own
        let small = shrink(&s, scenario, Instant::now() + Duration::from_secs(300)).await;
        let mut case = small.clone();
        case.expected = play(s.b, &small).await;
        case.recorded_from = "reference (warren-diff generate --b)".into();
        let path = s.save.join(format!("{}.json", case.name));
        case.save(&path)?;
        let d = differs(&s, &small).await.unwrap_or_default();
        println!(
            "DIFFERENT, shrunk to {} steps, saved {}\n{d}",
            small.steps.len(),
            path.display()
        );
    }
    println!("{tried} sequences, {found} differences");
    Ok(found == 0)
}
