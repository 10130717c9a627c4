//! Plays one scenario against one broker over raw sockets and writes down everything the
//! broker sends, step by step: methods with every field, deliveries with properties and body,
//! and who closes which socket when. A step that expects a reply waits for it (or for a
//! close); then the run waits until every connection has been quiet for a moment, so
//! deliveries to other channels and connections land in the step that caused them.
//! Within a step, lines are ordered by connection and channel: the order between channels
//! depends on scheduling in both brokers and says nothing about correctness.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use amq_protocol::protocol::{basic, channel, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString, ShortString};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren::protocol::frame::{self, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use warren::protocol::method;

use crate::methods;
use crate::scenario::{Scenario, Step};
use crate::wire::{self, Normalizer};

/// How long every connection must be silent before a step counts as finished.
const QUIET: Duration = Duration::from_millis(40);
/// How long a synchronous method may take to be answered before the run says so.
const REPLY_WAIT: Duration = Duration::from_secs(5);
/// How long a broker-sent connection.close is left unanswered, to see whether the broker
/// drops the socket without waiting for close-ok.
const CLOSE_OK_DELAY: Duration = Duration::from_millis(100);

enum Event {
    Frame(frame::RawFrame),
    /// the broker closed the socket (or it broke), with the reason when not a clean EOF
    Closed(Option<String>),
}

struct Conn {
    writer: Option<OwnedWriteHalf>,
    frame_max: u32,
    /// A broker close was seen and close-ok is due at this time.
    close_ok_due: Option<Instant>,
    /// The broker asked to close and we answered: a socket close is expected now.
    closing: bool,
    /// Bytes of pipelined steps not written yet.
    held: Vec<u8>,
}

/// A content-bearing method waiting for its header and body frames.
struct Partial {
    line: String,
    size: u64,
    props: String,
    body: Vec<u8>,
}

pub struct Runner {
    addr: SocketAddr,
    prefix: String,
    conns: Vec<Option<Conn>>,
    tx: mpsc::UnboundedSender<(usize, Event)>,
    rx: mpsc::UnboundedReceiver<(usize, Event)>,
    partial: HashMap<(usize, u16), Partial>,
    /// lines seen during the current step: (connection, channel, text)
    lines: Vec<(usize, u16, String)>,
    normalizer: Normalizer,
    /// channels the broker has opened and not closed, for steps flagged `reopen`
    open: HashSet<(usize, u16)>,
    /// server-named queues the broker made, deleted with the run's own at the end
    server_named: BTreeSet<String>,
    /// The current step is pipelined: its writes are held for the next step's.
    holding: bool,
}

impl Runner {
    pub fn new(addr: SocketAddr, run_id: &str) -> Runner {
        let (tx, rx) = mpsc::unbounded_channel();
        let prefix = format!("wd{run_id}-");
        Runner {
            addr,
            normalizer: Normalizer::new(&prefix),
            prefix,
            conns: Vec::new(),
            tx,
            rx,
            partial: HashMap::new(),
            lines: Vec::new(),
            open: HashSet::new(),
            server_named: BTreeSet::new(),
            holding: false,
        }
    }

    /// Run every step; the observations per step, normalised.
    pub async fn run(mut self, scenario: &Scenario) -> Vec<Vec<String>> {
        let mut all = Vec::with_capacity(scenario.steps.len());
        for step in &scenario.steps {
            self.holding = step.flag("pipeline");
            if let Err(e) = self.step(step).await {
                self.note(step.c, step.ch, format!("runner: {e}"));
            }
            // a pipelined step is written together with the next one, as a busy client does
            if step.flag("pipeline") {
                all.push(Vec::new());
                continue;
            }
            self.settle().await;
            let mut lines = std::mem::take(&mut self.lines);
            lines.sort_by_key(|(c, ch, _)| (*c, *ch));
            all.push(
                lines
                    .into_iter()
                    .map(|(c, ch, text)| self.normalizer.line(&format!("c{c} ch{ch} {text}")))
                    .collect(),
            );
        }
        self.hang_up().await;
        self.clean_up(scenario).await;
        all
    }

    /// Delete the queues and exchanges this run made, from a connection of its own, so
    /// that durable leftovers (bound to amq.* exchanges, say) cannot change a later run.
    async fn clean_up(&mut self, scenario: &Scenario) {
        let mut queues = BTreeSet::new();
        let mut exchanges = BTreeSet::new();
        for s in &scenario.steps {
            queues.extend(s.queue.iter().map(|n| self.name(Some(n))));
            exchanges.extend(
                [&s.exchange, &s.destination]
                    .into_iter()
                    .flatten()
                    .map(|n| self.name(Some(n))),
            );
        }
        queues.extend(std::mem::take(&mut self.server_named));
        let ours = |n: &String| n.starts_with(&self.prefix) || n.starts_with("amq.gen-");
        let deletes: Vec<AMQPClass> = queues
            .iter()
            .filter(|n| ours(n))
            .map(|n| {
                AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                    queue: n.as_str().into(),
                    ..Default::default()
                }))
            })
            .chain(exchanges.iter().filter(|n| ours(n)).map(|n| {
                AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                    exchange: n.as_str().into(),
                    ..Default::default()
                }))
            }))
            .collect();
        if deletes.is_empty() {
            return;
        }
        let c = self.conns.len();
        if self
            .open_connection(&Step::new(c, 0, "connection.open"))
            .await
            .is_ok()
        {
            // each on a channel of its own: a refusal closes only that channel
            for (i, delete) in deletes.into_iter().enumerate() {
                let ch = i as u16 + 1;
                let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
                if self.send_method(c, ch, open).await.is_err() {
                    break;
                }
                self.wait_reply(c, ch).await;
                let _ = self.send_method(c, ch, delete).await;
                self.wait_reply(c, ch).await;
            }
        }
        self.hang_up().await;
        self.lines.clear();
    }

    /// Reconnect connection `c` and reopen channel `ch` if the broker closed them, so a
    /// generated sequence goes on after an error instead of failing every later step.
    async fn reopen(&mut self, c: usize, ch: u16) -> Result<(), String> {
        let holding = std::mem::replace(&mut self.holding, false);
        let reopened = self.reopen_now(c, ch).await;
        self.holding = holding;
        reopened
    }

    async fn reopen_now(&mut self, c: usize, ch: u16) -> Result<(), String> {
        let alive = matches!(self.conns.get(c), Some(Some(conn)) if conn.writer.is_some());
        if !alive {
            self.open_connection(&Step::new(c, 0, "connection.open"))
                .await?;
        }
        if ch != 0 && !self.open.contains(&(c, ch)) {
            let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
            self.send_method(c, ch, open).await?;
            self.wait_reply(c, ch).await;
        }
        Ok(())
    }

    fn note(&mut self, c: usize, ch: u16, text: String) {
        self.lines.push((c, ch, text));
    }

    fn name(&self, name: Option<&String>) -> String {
        match name.map(String::as_str) {
            None | Some("") => String::new(),
            Some(n) if n.starts_with("amq.") => n.to_owned(),
            Some(n) => format!("{}{n}", self.prefix),
        }
    }

    async fn step(&mut self, s: &Step) -> Result<(), String> {
        if s.op == "connection.open" {
            return self.open_connection(s).await;
        }
        if s.flag("reopen") {
            self.reopen(s.c, s.ch).await?;
        }
        if s.op == "wait_closed" {
            return self.wait_closed(s.c).await;
        }
        let Some(Some(conn)) = self.conns.get(s.c) else {
            return Err(format!("connection {} is not open", s.c));
        };
        if conn.writer.is_none() {
            return Err(format!("connection {} is closed", s.c));
        }
        let frame_max = conn.frame_max;
        let x = || ShortString::from(self.name(s.exchange.as_ref()));
        let rk = || ShortString::from(s.routing_key.clone().unwrap_or_default());
        let f = |n: &str| s.flag(n);
        let m = match s.op.as_str() {
            "raw" => {
                let hex = s.hex.clone().unwrap_or_default();
                let bytes = decode_hex(&hex)?;
                return self.write(s.c, &bytes).await;
            }
            "basic.publish" => {
                let exchange = x();
                // the default exchange routes by queue name, and queue names carry the prefix
                let routing_key = if exchange.as_str().is_empty() {
                    ShortString::from(self.name(s.routing_key.as_ref()))
                } else {
                    rk()
                };
                let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange,
                    routing_key,
                    mandatory: f("mandatory"),
                    immediate: f("immediate"),
                }));
                let props = wire::encode_properties(&wire::properties(s.props.as_ref())?);
                let body = match (&s.body, s.body_size) {
                    (Some(b), _) => b.as_bytes().to_vec(),
                    (None, Some(n)) => vec![b'x'; n],
                    (None, None) => Vec::new(),
                };
                let per_frame = s.frame_payload.map(|p| p + 8).unwrap_or(frame_max);
                let mut out = BytesMut::new();
                method::encode(&mut out, s.ch, &publish);
                warren::protocol::content::encode_content(&mut out, s.ch, &props, &body, per_frame);
                return self.write(s.c, &out).await;
            }
            _ => methods::method(s, |n| self.name(n))?,
        };
        let synchronous = !f("nowait")
            && !f("pipeline")
            && !matches!(s.op.as_str(), "basic.ack" | "basic.nack" | "basic.reject");
        let mut out = BytesMut::new();
        method::encode(&mut out, s.ch, &m);
        self.write(s.c, &out).await?;
        if synchronous {
            self.wait_reply(s.c, s.ch).await;
        }
        Ok(())
    }

    async fn write(&mut self, c: usize, bytes: &[u8]) -> Result<(), String> {
        let Some(Some(conn)) = self.conns.get_mut(c) else {
            return Err(format!("connection {c} is not open"));
        };
        let Some(w) = conn.writer.as_mut() else {
            return Err(format!("connection {c} is closed"));
        };
        // a pipelined step's bytes wait for the next step's, so both leave in one write
        // and the broker reads them together, as it would from a busy client
        conn.held.extend_from_slice(bytes);
        if self.holding {
            return Ok(());
        }
        let out = std::mem::take(&mut conn.held);
        if let Err(e) = w.write_all(&out).await {
            self.lines
                .push((c, 0, format!("write failed: {:?}", e.kind())));
        }
        Ok(())
    }

    async fn open_connection(&mut self, s: &Step) -> Result<(), String> {
        let c = s.c;
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut read, write) = stream.into_split();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                match frame::split(&mut buf, 0) {
                    Ok(Some(f)) => {
                        if tx.send((c, Event::Frame(f))).is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.send((c, Event::Closed(Some(format!("bad frame: {e}")))));
                        return;
                    }
                }
                match read.read_buf(&mut buf).await {
                    Ok(0) => {
                        let _ = tx.send((c, Event::Closed(None)));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send((c, Event::Closed(Some(format!("{:?}", e.kind())))));
                        return;
                    }
                }
            }
        });
        while self.conns.len() <= c {
            self.conns.push(None);
        }
        self.conns[c] = Some(Conn {
            writer: Some(write),
            frame_max: 131072,
            close_ok_due: None,
            closing: false,
            held: Vec::new(),
        });
        self.write(c, frame::PROTOCOL_HEADER).await?;
        // connection.start: server properties differ by design; the version is compared
        let Some(start) = self.handshake_method(c).await else {
            return Ok(());
        };
        let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = start else {
            self.note(
                c,
                0,
                format!("expected connection.start, got {}", wire::describe(&start)),
            );
            return Ok(());
        };
        self.note(
            c,
            0,
            format!(
                "connection.start {}-{}",
                start.version_major, start.version_minor
            ),
        );
        let capabilities = s.capabilities.clone().unwrap_or_else(|| {
            [
                "authentication_failure_close",
                "basic.nack",
                "connection.blocked",
                "consumer_cancel_notify",
                "exchange_exchange_bindings",
                "publisher_confirms",
            ]
            .map(String::from)
            .to_vec()
        });
        let mut caps = FieldTable::default();
        for cap in capabilities {
            caps.insert(
                ShortString::from(cap),
                amq_protocol::types::AMQPValue::Boolean(true),
            );
        }
        let mut client_properties = FieldTable::default();
        client_properties.insert(
            "capabilities".into(),
            amq_protocol::types::AMQPValue::FieldTable(caps),
        );
        let user = s.user.clone().unwrap_or_else(|| "guest".into());
        let password = s.password.clone().unwrap_or_else(|| "guest".into());
        self.send_method(
            c,
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties,
                mechanism: "PLAIN".into(),
                response: LongString::from(format!("\0{user}\0{password}").into_bytes()),
                locale: "en_US".into(),
            })),
        )
        .await?;
        let Some(tune) = self.handshake_method(c).await else {
            return Ok(());
        };
        let AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) = tune else {
            self.note(c, 0, wire::describe(&tune));
            return Ok(());
        };
        self.note(
            c,
            0,
            format!(
                "connection.tune channel_max={} frame_max={} heartbeat={}",
                tune.channel_max, tune.frame_max, tune.heartbeat
            ),
        );
        let channel_max = s.channel_max.unwrap_or(tune.channel_max);
        let frame_max = s.frame_max.unwrap_or(tune.frame_max);
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.frame_max = frame_max;
        }
        self.send_method(
            c,
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat: 0,
            })),
        )
        .await?;
        let vhost = s.vhost.clone().unwrap_or_else(|| "/".into());
        self.send_method(
            c,
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: ShortString::from(vhost),
            })),
        )
        .await?;
        self.wait_reply(c, 0).await;
        Ok(())
    }

    /// The next method on channel 0 during the handshake; a close or EOF is recorded.
    async fn handshake_method(&mut self, c: usize) -> Option<AMQPClass> {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let Ok(Some((from, event))) = tokio::time::timeout_at(deadline, self.rx.recv()).await
            else {
                self.note(c, 0, "no reply within 5 s".into());
                return None;
            };
            if from == c {
                if let Event::Frame(f) = &event {
                    if f.kind == FRAME_METHOD && f.channel == 0 {
                        if let Ok(
                            m @ AMQPClass::Connection(
                                connection::AMQPMethod::Start(_) | connection::AMQPMethod::Tune(_),
                            ),
                        ) = method::decode(&f.payload)
                        {
                            return Some(m);
                        }
                    }
                }
                let was_closed = matches!(event, Event::Closed(_));
                self.handle(from, event).await;
                if was_closed || self.lines.iter().any(|(lc, _, _)| *lc == c) {
                    return None;
                }
            } else {
                self.handle(from, event).await;
            }
        }
    }

    async fn send_method(&mut self, c: usize, ch: u16, m: AMQPClass) -> Result<(), String> {
        let mut out = BytesMut::new();
        method::encode(&mut out, ch, &m);
        self.write(c, &out).await
    }

    /// Wait for any method on (c, ch), a connection close, or the socket closing.
    async fn wait_reply(&mut self, c: usize, ch: u16) {
        let deadline = Instant::now() + REPLY_WAIT;
        let seen = self.lines.len();
        loop {
            let answered = self.lines[seen..]
                .iter()
                .any(|(lc, lch, _)| *lc == c && (*lch == ch || *lch == 0));
            if answered {
                return;
            }
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Ok(Some((from, event))) => self.handle(from, event).await,
                Ok(None) => return,
                Err(_) => {
                    self.note(c, ch, "no reply within 5 s".into());
                    return;
                }
            }
        }
    }

    /// The next event, sending any close-ok that has fallen due first.
    async fn next_event(&mut self) -> Option<(usize, Event)> {
        loop {
            let due = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().and_then(|c| c.close_ok_due.map(|d| (i, d))))
                .min_by_key(|(_, d)| *d);
            match due {
                None => return self.rx.recv().await,
                Some((c, at)) => match tokio::time::timeout_at(at, self.rx.recv()).await {
                    Ok(e) => return e,
                    Err(_) => self.answer_close(c).await,
                },
            }
        }
    }

    async fn answer_close(&mut self, c: usize) {
        let _ = self
            .send_method(
                c,
                0,
                AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
            )
            .await;
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.close_ok_due = None;
            conn.closing = true;
            // as client libraries do: close-ok sent, the client hangs up
            if let Some(mut w) = conn.writer.take() {
                let _ = w.shutdown().await;
            }
        }
    }

    /// Until every connection has been quiet for QUIET (bounded).
    async fn settle(&mut self) {
        let cap = Instant::now() + REPLY_WAIT;
        loop {
            let pending = self
                .conns
                .iter()
                .flatten()
                .any(|c| c.close_ok_due.is_some());
            let quiet = if pending { REPLY_WAIT } else { QUIET };
            let until = (Instant::now() + quiet).min(cap);
            match tokio::time::timeout_at(until, self.next_event()).await {
                Ok(Some((c, e))) => self.handle(c, e).await,
                _ => return,
            }
            if Instant::now() >= cap {
                return;
            }
        }
    }

    async fn wait_closed(&mut self, c: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let open = matches!(self.conns.get(c), Some(Some(_)));
            if !open {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Ok(Some((from, e))) => self.handle(from, e).await,
                _ => {
                    self.note(c, 0, "socket still open after 10 s".into());
                    return Ok(());
                }
            }
        }
    }

    async fn handle(&mut self, c: usize, event: Event) {
        let f = match event {
            Event::Closed(why) => {
                let before_close_ok = self
                    .conns
                    .get(c)
                    .and_then(|x| x.as_ref())
                    .is_some_and(|x| x.close_ok_due.is_some());
                let closing = self
                    .conns
                    .get(c)
                    .and_then(|x| x.as_ref())
                    .is_some_and(|x| x.closing);
                if let Some(slot) = self.conns.get_mut(c) {
                    *slot = None;
                }
                self.open.retain(|(oc, _)| *oc != c);
                let text = match (before_close_ok, why) {
                    (true, _) => "broker closed the socket without waiting for close-ok".into(),
                    // after close-ok, the socket ending either way is the expected end
                    (false, _) if closing => return,
                    // a reset or a FIN: both are the broker hanging up (RabbitMQ resets)
                    (false, None) => "broker closed the socket".to_owned(),
                    (false, Some(why)) if why == "ConnectionReset" => {
                        "broker closed the socket".to_owned()
                    }
                    (false, Some(why)) => format!("socket error: {why}"),
                };
                self.note(c, 0, text);
                return;
            }
            Event::Frame(f) => f,
        };
        let key = (c, f.channel);
        match f.kind {
            FRAME_HEARTBEAT => {}
            FRAME_METHOD => {
                let m = match method::decode(&f.payload) {
                    Ok(m) => m,
                    Err(e) => {
                        self.note(c, f.channel, format!("undecodable method: {e}"));
                        return;
                    }
                };
                let line = wire::describe(&m);
                match &m {
                    AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {
                        self.open.insert(key);
                    }
                    AMQPClass::Channel(
                        channel::AMQPMethod::Close(_) | channel::AMQPMethod::CloseOk(_),
                    ) => {
                        self.open.remove(&key);
                    }
                    AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                        self.open.retain(|(oc, _)| *oc != c);
                    }
                    AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))
                        if ok.queue.as_str().starts_with("amq.gen-") =>
                    {
                        self.server_named.insert(ok.queue.to_string());
                    }
                    _ => {}
                }
                match &m {
                    AMQPClass::Basic(
                        basic::AMQPMethod::Deliver(_)
                        | basic::AMQPMethod::GetOk(_)
                        | basic::AMQPMethod::Return(_),
                    ) => {
                        self.partial.insert(
                            key,
                            Partial {
                                line,
                                size: 0,
                                props: String::new(),
                                body: Vec::new(),
                            },
                        );
                    }
                    AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                        self.note(c, f.channel, line);
                        let _ = self
                            .send_method(
                                c,
                                f.channel,
                                AMQPClass::Channel(channel::AMQPMethod::CloseOk(
                                    channel::CloseOk {},
                                )),
                            )
                            .await;
                    }
                    AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                        self.note(c, 0, line);
                        if let Some(Some(conn)) = self.conns.get_mut(c) {
                            conn.close_ok_due = Some(Instant::now() + CLOSE_OK_DELAY);
                        }
                    }
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                        self.note(c, 0, line);
                        if let Some(Some(conn)) = self.conns.get_mut(c) {
                            conn.closing = true;
                            if let Some(mut w) = conn.writer.take() {
                                let _ = w.shutdown().await;
                            }
                        }
                    }
                    _ => self.note(c, f.channel, line),
                }
            }
            FRAME_HEADER => {
                let parsed = amq_protocol::frame::parsing::parse_content_header(&f.payload[..]);
                match (self.partial.get_mut(&key), parsed) {
                    (Some(p), Ok((_, h))) => {
                        p.size = h.body_size;
                        p.props = wire::describe_properties(&h.properties);
                    }
                    (None, _) => self.note(c, f.channel, "content header without a method".into()),
                    (_, Err(_)) => self.note(c, f.channel, "undecodable content header".into()),
                }
                self.complete(key);
            }
            FRAME_BODY => {
                match self.partial.get_mut(&key) {
                    Some(p) => p.body.extend_from_slice(&f.payload),
                    None => self.note(c, f.channel, "body frame without a method".into()),
                }
                self.complete(key);
            }
            other => self.note(c, f.channel, format!("frame of unknown type {other}")),
        }
    }

    fn complete(&mut self, key: (usize, u16)) {
        let done = self
            .partial
            .get(&key)
            .is_some_and(|p| !p.props.is_empty() && p.body.len() as u64 >= p.size);
        if done {
            if let Some(p) = self.partial.remove(&key) {
                let body = if p.body.len() <= 64 {
                    format!("{:?}", String::from_utf8_lossy(&p.body))
                } else {
                    format!("<{} bytes>", p.body.len())
                };
                self.note(key.0, key.1, format!("{} {} body={body}", p.line, p.props));
            }
        }
    }

    /// Close what is still open, politely, without recording anything.
    async fn hang_up(&mut self) {
        for c in 0..self.conns.len() {
            if let Some(Some(conn)) = self.conns.get_mut(c) {
                if let Some(mut w) = conn.writer.take() {
                    let mut out = BytesMut::new();
                    method::encode(
                        &mut out,
                        0,
                        &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                            reply_code: 200,
                            reply_text: "bye".into(),
                            class_id: 0,
                            method_id: 0,
                        })),
                    );
                    let _ = w.write_all(&out).await;
                    let _ = tokio::time::timeout(Duration::from_millis(200), async {
                        while let Some((from, e)) = self.rx.recv().await {
                            if from == c && matches!(e, Event::Closed(_)) {
                                return;
                            }
                            if from == c {
                                if let Event::Frame(f) = &e {
                                    if f.kind == FRAME_METHOD && method::ids(&f.payload) == (10, 51)
                                    {
                                        return;
                                    }
                                }
                            }
                        }
                    })
                    .await;
                    let _ = w.shutdown().await;
                }
            }
        }
    }
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    let clean: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean.len().is_multiple_of(2) {
        return Err("hex with an odd number of digits".into());
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}
