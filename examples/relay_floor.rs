//! The floor under the fixed-rate rows of `bench/compare.sh` (latency-each, amqprs-10k): how
//! much CPU a process spends per message when it does nothing but move bytes in the shape a
//! broker moves them, so Warren's CPU per message can be split into what the sockets and
//! wake-ups cost on this host and what Warren itself adds.
//!
//! The relay speaks no AMQP. It takes fixed-size records sized like a 100-byte message's
//! frames: a publish (150 bytes) becomes a delivery (170 bytes) and each delivery is answered
//! by an ack (21 bytes, a basic.ack frame). With WORKERS 1 or more it hands them along
//! Warren's hops (publisher connection task -> queue task with a prefetch of 200 -> consumer
//! connection task, acks back to the queue task) on that many tokio workers; with
//! WORKERS 0 one task reads publishes and writes deliveries inline, the least any process
//! can do for this traffic. The client is shaped like `warren-perf latency --write-per-publish
//! --ack-every 1`: one thread, a 1 ms tick sending rate/1000 records each written on its own,
//! an ack written per delivery. It reads the relay's CPU from /proc over the measured window.
//!
//! `cargo run --release --example relay_floor -- relay PORT [WORKERS]` in one shell,
//! `cargo run --release --example relay_floor -- client PORT RATE SECONDS RELAY_PID` in another;
//! the client prints one JSON object.
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

// warren-perf's /proc reader, so the relay's CPU is read as the broker's is.
#[allow(dead_code)]
#[path = "../src/bin/warren-perf/sample.rs"]
mod sample;
// ... and its percentiles, so the relay's p99 is taken as warren-perf takes the broker's.
#[path = "../src/bin/warren-perf/percentile.rs"]
mod percentile;

const PUBLISH: usize = 150; // ~ basic.publish + header + 100-byte body frames
const DELIVER: usize = 170; // ~ basic.deliver + header + body
const ACK: usize = 21; // basic.ack frame
const PREFETCH: usize = 200;

/// A read buffer that hands out whole fixed-size records and keeps a partial one for the
/// next read, as every reader here needs.
struct Records {
    buf: Vec<u8>,
    have: usize,
    size: usize,
}

impl Records {
    fn new(size: usize) -> Records {
        Records {
            buf: vec![0u8; 65536],
            have: 0,
            size,
        }
    }

    /// One read; false at the end of the stream or on an error.
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> bool {
        match r.read(&mut self.buf[self.have..]).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.have += n;
                true
            }
        }
    }

    fn whole(&self) -> usize {
        self.have / self.size
    }

    fn record(&self, i: usize) -> &[u8] {
        &self.buf[i * self.size..(i + 1) * self.size]
    }

    /// Drops the whole records, keeping the partial one at the front.
    fn consume(&mut self) {
        let used = self.whole() * self.size;
        self.buf.copy_within(used..self.have, 0);
        self.have -= used;
    }
}

enum Cmd {
    Publish(Vec<u8>),
    Ack,
    Consumer(mpsc::UnboundedSender<Vec<u8>>),
}

async fn queue(mut rx: mpsc::Receiver<Cmd>) {
    let mut ready: VecDeque<Vec<u8>> = VecDeque::new();
    let mut consumer: Option<mpsc::UnboundedSender<Vec<u8>>> = None;
    let mut credit = PREFETCH;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Publish(m) => ready.push_back(m),
            Cmd::Ack => credit += 1,
            Cmd::Consumer(tx) => consumer = Some(tx),
        }
        if let Some(tx) = &consumer {
            while credit > 0 {
                let Some(m) = ready.pop_front() else { break };
                credit -= 1;
                let _ = tx.send(m);
            }
        }
    }
}

async fn publisher_conn(mut s: TcpStream, q: mpsc::Sender<Cmd>) {
    let mut publishes = Records::new(PUBLISH);
    while publishes.fill(&mut s).await {
        for i in 0..publishes.whole() {
            let mut d = vec![0u8; DELIVER];
            d[..PUBLISH].copy_from_slice(publishes.record(i));
            if q.send(Cmd::Publish(d)).await.is_err() {
                return;
            }
        }
        publishes.consume();
    }
}

async fn consumer_conn(s: TcpStream, q: mpsc::Sender<Cmd>) {
    let (mut r, mut w) = s.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let _ = q.send(Cmd::Consumer(tx)).await;
    let mut acks = Records::new(ACK);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { return };
                out.extend_from_slice(&m);
                while let Ok(m) = rx.try_recv() { out.extend_from_slice(&m); }
                if w.write_all(&out).await.is_err() { return; }
                out.clear();
            }
            more = acks.fill(&mut r) => {
                if !more { return; }
                for _ in 0..acks.whole() {
                    if q.send(Cmd::Ack).await.is_err() { return; }
                }
                acks.consume();
            }
        }
    }
}

/// No tasks between the sockets: one task reads publishes and writes deliveries inline, and
/// counts acks; the least a process can do for this traffic.
async fn direct(mut p: TcpStream, mut c: TcpStream) {
    let mut publishes = Records::new(PUBLISH);
    let mut acks = Records::new(ACK);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            more = publishes.fill(&mut p) => {
                if !more { return; }
                for i in 0..publishes.whole() {
                    out.extend_from_slice(publishes.record(i));
                    out.extend_from_slice(&[0u8; DELIVER - PUBLISH]);
                }
                publishes.consume();
                if c.write_all(&out).await.is_err() { return; }
                out.clear();
            }
            more = acks.fill(&mut c) => {
                if !more { return; }
                acks.consume();
            }
        }
    }
}

/// Accepts a client's two connections and returns them as (publisher, consumer): each
/// announces its role in its first byte.
async fn accept_pair(l: &TcpListener) -> (TcpStream, TcpStream) {
    let (mut publisher, mut consumer) = (None, None);
    while publisher.is_none() || consumer.is_none() {
        let (mut s, _) = l.accept().await.expect("accept");
        s.set_nodelay(true).ok();
        let mut role = [0u8];
        s.read_exact(&mut role).await.expect("role");
        if role[0] == b'P' {
            publisher = Some(s);
        } else {
            consumer = Some(s);
        }
    }
    (publisher.expect("publisher"), consumer.expect("consumer"))
}

fn relay(port: u16, workers: usize) {
    let rt = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        loop {
            let (publisher, consumer) = accept_pair(&l).await;
            if workers == 0 {
                tokio::spawn(direct(publisher, consumer));
                continue;
            }
            let (q, qrx) = mpsc::channel(4096);
            tokio::spawn(queue(qrx));
            tokio::spawn(publisher_conn(publisher, q.clone()));
            tokio::spawn(consumer_conn(consumer, q));
        }
    });
}

fn client(port: u16, rate: u64, secs: f64, relay: sample::Probe) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async move {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        c.set_nodelay(true).ok();
        c.write_all(b"C").await.expect("role");
        let mut p = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        p.set_nodelay(true).ok();
        p.write_all(b"P").await.expect("role");
        let start = Instant::now();
        let per_tick = (rate / 1000).max(1);
        let producer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut rec = [7u8; PUBLISH];
            // Runs until the consumer has its figures and aborts it: a publisher that stopped
            // first would close its connection, and the relay the consumer's, mid-ack.
            loop {
                tick.tick().await;
                for _ in 0..per_tick {
                    let ns = start.elapsed().as_nanos() as u64;
                    rec[..8].copy_from_slice(&ns.to_le_bytes());
                    if p.write_all(&rec).await.is_err() {
                        return;
                    }
                }
            }
        });
        let mut deliveries = Records::new(DELIVER);
        let mut lat: Vec<u32> = Vec::new();
        let ack = [1u8; ACK];
        // Where the measured window opened (after a second of warm-up): the relay's CPU then,
        // the time, and the deliveries counted so far.
        let mut window = None;
        let mut n = 0u64;
        'run: while deliveries.fill(&mut c).await {
            for i in 0..deliveries.whole() {
                let sent = deliveries.record(i)[..8].try_into().map(u64::from_le_bytes);
                let now = start.elapsed().as_nanos() as u64;
                n += 1;
                if start.elapsed().as_secs_f64() > 1.0 {
                    if window.is_none() {
                        window = Some((relay.sample(), Instant::now(), n));
                    }
                    lat.push((now.saturating_sub(sent.unwrap_or(now)) / 1000) as u32);
                }
                if c.write_all(&ack).await.is_err() {
                    break 'run;
                }
            }
            deliveries.consume();
            if start.elapsed().as_secs_f64() > secs + 1.0 {
                break;
            }
        }
        let (Some((Some(first), t0, n0)), Some(last)) = (window, relay.sample()) else {
            eprintln!("relay_floor: no measured window, or the relay's CPU unreadable in /proc");
            std::process::exit(1);
        };
        let cpu = last.cpu - first.cpu;
        let msgs = n - n0;
        let el = t0.elapsed().as_secs_f64();
        lat.sort_unstable();
        println!(
            "{{\"msgs_per_s\": {:.0}, \"relay_cpu_us_per_msg\": {:.2}, \"latency_p50_us\": {}, \"latency_p99_us\": {}}}",
            msgs as f64 / el,
            cpu * 1e6 / msgs.max(1) as f64,
            percentile::percentile(&lat, 0.5),
            percentile::percentile(&lat, 0.99)
        );
        producer.abort();
    });
}

const USAGE: &str =
    "relay_floor relay PORT [WORKERS, default 2] | relay_floor client PORT RATE SECONDS RELAY_PID";

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
    // Every argument is parsed whole, and only WORKERS has a default (the usage shows it): a
    // figure taken with a default the caller did not ask for would be reported as theirs.
    match (arg(0), a.len()) {
        ("relay", 2 | 3) => {
            let (Ok(port), Ok(workers)) = (arg(1).parse(), a.get(2).map_or(Ok(2), |w| w.parse()))
            else {
                eprintln!("{USAGE}");
                std::process::exit(2);
            };
            relay(port, workers)
        }
        ("client", 5) => {
            let (Ok(port), Ok(rate), Ok(secs), Ok(pid)) = (
                arg(1).parse(),
                arg(2).parse(),
                arg(3).parse(),
                arg(4).parse::<u32>(),
            ) else {
                eprintln!("{USAGE}");
                std::process::exit(2);
            };
            client(port, rate, secs, sample::Probe::broker(Some(pid)))
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
