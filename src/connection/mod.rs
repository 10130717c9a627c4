//! One client connection: a reader task (this module's `Connection`) and a writer task.
//!
//! The connection task owns every channel's state. Its loop waits on the socket, on
//! deliveries and cancellations from queues, on the heartbeat timer and on broker shutdown;
//! whatever it produces during one wake-up goes to the writer as one buffer. It awaits
//! queue mailboxes (bounded, so a full queue slows this publisher) but never the writer,
//! and never waits on the socket: on plain TCP that buffer is written at once when nothing
//! is queued ahead of it and the socket has room, and left to the writer task otherwise.

mod channel;
mod confirms;
mod dispatch;
mod handlers;
pub mod handshake;
mod outbound;
mod session;
mod signals;
pub mod socket;
mod wake_order;
mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{connection, AMQPClass};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tracing::Instrument;

use crate::broker::connections::{ChannelSnapshot, ConnectionInfo, ConnectionRequest, Traffic};
use crate::broker::consumer::{ConnEvent, Credit};
use crate::broker::inbox;
use crate::broker::BrokerState;
use crate::protocol::{frame, method, reply, AmqpError};
use channel::ChannelState;
use handshake::{HandshakeEnd, Negotiated};
use outbound::Outbound;
use session::Session;
use signals::{PolledOnWake, Signal, Signals};
use socket::Socket;
use writer::{Out, WriterTx};

/// Smallest and largest read size: see `read_hint` in `run`.
const MIN_READ: usize = 512;
const MAX_READ: usize = 256 * 1024;

/// The next event, or never when no event channel exists yet.
async fn next_event(rx: &mut Option<inbox::Receiver<ConnEvent>>) -> Option<ConnEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next move of a manual clock; never, on the real clock.
async fn moved(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Option<()> {
    match rx {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// Read once into `buf`, making room for at least `hint` bytes first.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    hint: usize,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < hint {
        buf.reserve(hint);
    }
    reader.read_buf(buf).await
}

/// How long we wait for connection.close-ok after sending connection.close.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a refused handshake keeps the socket open for the client's close-ok
/// (RabbitMQ's SILENT_CLOSE_DELAY).
const REFUSED_CLOSE_DELAY: Duration = Duration::from_secs(3);
/// How long we keep reading after close-ok for a client that does not hang up.
const CLOSED_LINGER: Duration = Duration::from_secs(10);

pub struct Connection {
    /// This connection as the management API lists it (its channel count kept here).
    info: Arc<ConnectionInfo>,
    /// The vhost, the user and the outgoing frames: what channel methods work with.
    session: Session,
    channel_max: u16,
    frame_max: u32,
    heartbeat: u16,
    consumer_cancel_notify: bool,
    /// No-ack credit to give back once `out` is on the socket.
    releases: Vec<(Arc<Credit>, u32)>,
    writer: WriterTx,
    /// Boxed: an idle connection's map then holds pointers, not whole channel states.
    channels: HashMap<u16, Box<ChannelState>>,
    /// Set once we sent connection.close: the deadline for close-ok.
    closing: Option<Instant>,
    /// The connection is finished; the loop ends after flushing.
    done: bool,
    /// The client sent connection.close and we answered: input is discarded until EOF.
    client_closed: bool,
    /// The client understands connection.blocked / unblocked.
    blocked_notify: bool,
    /// Held by the memory alarm: the socket is not read.
    blocked: bool,
    /// Channels the client closed while handling the bytes read so far: frames for them
    /// that were already on their way (sent before the client saw close-ok) are dropped,
    /// as RabbitMQ's closing channel drops them, instead of being a 504.
    closed_by_client: Vec<u16>,
}

/// Serve one accepted socket until it closes.
///
/// Not an `async fn`: that would keep the arguments in its own state beside the block's
/// copy of them, in every connection's task for its whole life. The TLS details come
/// boxed for the same reason: a plain connection's task then holds 8 bytes, not 192.
pub fn serve<S: Socket>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    broker: Arc<BrokerState>,
    tls: Option<Box<handshake::TlsPeer>>,
) -> impl std::future::Future<Output = ()> + Send {
    let id = broker.next_id();
    let span = tracing::info_span!("connection", id, %peer);
    async move {
        broker
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        broker.metrics.connections_opened.inc();
        let (mut reader, write_half, direct) = stream.into_halves();
        let traffic = Arc::new(Traffic::default());
        let (writer, writer_task) = writer::spawn(write_half, direct, traffic.clone());
        // Small to start: an idle connection should cost little; it grows with the frames.
        let mut rbuf = BytesMut::with_capacity(MIN_READ);
        let timeout = Duration::from_millis(broker.config.handshake_timeout);
        let mut shutdown = broker.shutdown.subscribe();
        let negotiated = tokio::select! {
            n = tokio::time::timeout(
                timeout,
                // boxed: its state is freed once open, instead of sizing the connection's task
                Box::pin(handshake::handshake(
                    &mut reader,
                    &mut rbuf,
                    &writer,
                    &broker,
                    peer,
                    tls.as_deref(),
                )),
            ) => n,
            // a broker stopping does not wait for clients that have not finished opening
            _ = shutdown.wait_for(|stopping| *stopping) => Ok(Err(HandshakeEnd::Gone)),
        };
        match negotiated {
            Ok(Ok(mut n)) => {
                tracing::debug!(user = %n.user, vhost = %n.vhost.name, "connection open");
                let (info, close_requests) = ConnectionInfo::new(
                    id,
                    peer,
                    local,
                    n.user.clone(),
                    n.vhost.name.clone(),
                    tls.as_ref().map(|t| Box::new(t.details.clone())),
                    traffic,
                    std::mem::take(&mut n.client_properties),
                    (n.frame_max, n.channel_max, n.heartbeat),
                );
                broker.connection_registry.add(info.clone());
                handshake::open_ok(&writer);
                let vhost = broker.vhost(&info.vhost);
                let traffic = info.traffic.clone();
                // boxed: `run` holds the connection across its awaits, and a boxed self
                // is kept once rather than copied into the task's state
                Box::new(Connection::new(id, broker.clone(), n, writer, info))
                    .run(reader, rbuf, close_requests)
                    .await;
                broker.connection_registry.remove(id);
                // the vhost's traffic totals keep what this connection carried
                if let Some(v) = vhost {
                    v.stats.retire_octets(traffic.octets());
                }
            }
            Ok(Err(HandshakeEnd::Refused(e))) => {
                send_close_now(&writer, &e);
                await_close_ok(&mut reader, &mut rbuf, &mut shutdown).await;
                drop(writer);
            }
            Ok(Err(HandshakeEnd::LoginRefused { error, notify })) => {
                if notify {
                    send_close_now(&writer, &error);
                }
                await_close_ok(&mut reader, &mut rbuf, &mut shutdown).await;
                drop(writer);
            }
            Ok(Err(HandshakeEnd::Gone)) => drop(writer),
            Err(_) => {
                tracing::info!("closing: handshake not completed within {timeout:?}");
                drop(writer);
            }
        }
        // the writer finishes what was queued, then closes the socket
        let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
        broker
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        broker.metrics.connections_closed.inc();
    }
    .instrument(span)
}

/// After refusing a handshake: keep the socket open until the client answers close-ok or
/// hangs up, for at most REFUSED_CLOSE_DELAY. Closing at once would make the client's
/// close-ok meet a reset, and some clients then report the reset instead of the refusal;
/// RabbitMQ waits the same 3 s, which also slows down login floods.
async fn await_close_ok<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let wait = async {
        loop {
            while let Ok(Some(f)) = frame::split(rbuf, 0) {
                if f.kind == frame::FRAME_METHOD && method::ids(&f.payload) == (10, 51) {
                    return;
                }
            }
            if rbuf.len() > 64 * 1024 {
                return; // not an AMQP client answering a close: stop reading
            }
            match reader.read_buf(rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(REFUSED_CLOSE_DELAY, wait) => {}
        _ = shutdown.wait_for(|stopping| *stopping) => {}
    }
}

fn send_close_now(writer: &WriterTx, e: &AmqpError) {
    let mut out = Outbound::new(0);
    out.connection_close(e);
    writer.send(Out::Data(out.take()));
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.session
            .vhost
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Connection {
    fn new(
        id: u64,
        broker: Arc<BrokerState>,
        n: Negotiated,
        writer: WriterTx,
        info: Arc<ConnectionInfo>,
    ) -> Self {
        Self {
            info,
            session: Session::new(id, broker, n.vhost, n.user, n.impersonator, n.frame_max),
            channel_max: n.channel_max,
            frame_max: n.frame_max,
            heartbeat: n.heartbeat,
            consumer_cancel_notify: n.consumer_cancel_notify,
            releases: Vec::new(),
            writer,
            channels: HashMap::new(),
            closing: None,
            done: false,
            client_closed: false,
            blocked_notify: n.blocked_notify,
            blocked: false,
            closed_by_client: Vec::new(),
        }
    }

    async fn run<R: AsyncRead + Unpin>(
        mut self: Box<Self>,
        reader: R,
        mut rbuf: BytesMut,
        mut requests: inbox::Receiver<ConnectionRequest>,
    ) {
        let mut reader = wake_order::WakeTracked::new(reader);
        let mut events_rx: Option<inbox::Receiver<ConnEvent>> = None;
        // one future for the rare broker-wide signals, kept across turns of the loop
        let mut signals = PolledOnWake::new(
            Signals {
                alarm: self.session.broker.alarm.subscribe(),
                shutdown: self.session.broker.shutdown.subscribe(),
                vhost_deleted: self.session.vhost.deleted.subscribe(),
                users_deleted: self.session.broker.users_deleted.subscribe(),
            }
            .catch_up(self.session.broker.users.get(&self.session.user).is_none())
            .next(),
        );
        let hb = self.heartbeat;
        let tick_every = if hb == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(hb as u64 * 500)
        };
        let mut ticker = tokio::time::interval_at(Instant::now() + tick_every, tick_every);
        // RabbitMQ looks for timed-out deliveries on each channel's tick (a minute); a
        // shorter timeout is looked at twice as often as it is long
        let consumer_timeout = Duration::from_millis(self.session.broker.config.consumer_timeout);
        let look_every =
            (consumer_timeout / 2).clamp(Duration::from_millis(5), Duration::from_secs(60));
        let mut timeout_check = tokio::time::interval_at(Instant::now() + look_every, look_every);
        timeout_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // a manual clock is looked at whenever it moves
        let mut clock_moved = self.session.broker.clock.advanced();
        let mut last_recv = Instant::now();
        let mut last_sent = Instant::now();
        let mut reader_open = true;
        // Read size grows while reads fill the buffer (a busy publisher) and starts small,
        // so an idle connection holds one small buffer.
        let mut read_hint = MIN_READ;

        while !self.done {
            if events_rx.is_none() {
                events_rx = self.session.new_events_rx.take();
            }
            let close_deadline = self
                .closing
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                read = read_some(&mut reader, &mut rbuf, read_hint), if reader_open && !self.blocked => {
                    match read {
                        Ok(0) | Err(_) => { reader_open = false; self.done = true; }
                        Ok(n) => {
                            self.info.traffic.received(n);
                            if n >= read_hint && read_hint < MAX_READ {
                                read_hint *= 2;
                            }
                            last_recv = Instant::now();
                            self.session.routed_since_read = false;
                            // boxed: the handlers' futures are large (a declare
                            // awaits the store), and an idle connection's task should
                            // not carry their space; one allocation per read is cheap
                            Box::pin(self.handle_input(&mut rbuf)).await;
                            if self.session.published && self.session.broker.alarm.is_raised() {
                                self.set_blocked(true);
                            }
                        }
                    }
                }
                Some(ev) = next_event(&mut events_rx) => {
                    let mut goes_back = Vec::new();
                    goes_back.extend(self.handle_event(ev));
                    for _ in 0..255 {
                        match events_rx.as_mut().map(|rx| rx.try_recv()) {
                            Some(Ok(ev)) => goes_back.extend(self.handle_event(ev)),
                            _ => break,
                        }
                    }
                    // rare (a channel or consumer gone), so boxed: see `handle_event`
                    for delivery in goes_back {
                        Box::pin(delivery.send()).await;
                    }
                }
                _ = ticker.tick() => {
                    if self.blocked {
                        // not reading, so its heartbeats cannot be seen: do not count them
                        last_recv = Instant::now();
                    }
                    if hb != 0 {
                        let now = Instant::now();
                        if now.duration_since(last_recv) > Duration::from_secs(hb as u64 * 2) {
                            tracing::warn!("missed heartbeats from client, timeout: {hb}s");
                            self.done = true;
                        } else if now.duration_since(last_sent) >= tick_every {
                            self.session.out.heartbeat();
                        }
                    }
                }
                _ = timeout_check.tick(), if !consumer_timeout.is_zero() => {
                    Box::pin(self.expire_deliveries(consumer_timeout)).await;
                }
                Some(()) = moved(&mut clock_moved), if !consumer_timeout.is_zero() => {
                    Box::pin(self.expire_deliveries(consumer_timeout)).await;
                }
                (signal, rest) = &mut signals => {
                    signals.set(rest.next());
                    self.on_signal(signal);
                }
                Some(request) = requests.recv() => match request {
                    ConnectionRequest::Channels(reply) => {
                        let _ = reply.send(self.channel_snapshots());
                    }
                    ConnectionRequest::Close(reason) => if self.closing.is_none() {
                        // as RabbitMQ's management plugin: the operator's reason is the text
                        let e = AmqpError::new(reply::CONNECTION_FORCED, reason);
                        self.begin_close(&e);
                    }
                },
                _ = tokio::time::sleep_until(close_deadline), if self.closing.is_some() => {
                    self.done = true;
                }
            }
            if self.flush() {
                last_sent = Instant::now();
            }
        }
        // boxed: needed once, at the end; not worth carrying for the connection's life
        Box::pin(self.teardown()).await;
        // Deliveries still on their way here would die with the receiver, and the queues
        // would hold them as unacked for good: close it (a queue whose send then fails
        // keeps the message) and hand back every delivery that had already arrived.
        if let Some(mut rx) = events_rx
            .take()
            .or_else(|| self.session.new_events_rx.take())
        {
            rx.close();
            // close() takes the lock every send takes, so what follows is all there is
            while let Ok(ev) = rx.try_recv() {
                if let ConnEvent::Deliver { queue, message, .. } = ev {
                    dispatch::GoesBack(queue, message).send().await;
                }
            }
        }
        self.flush();
    }

    /// Split and handle every complete frame in the read buffer.
    async fn handle_input(&mut self, rbuf: &mut BytesMut) {
        while !self.done {
            let frame = match frame::split(rbuf, self.frame_max) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    // what arrives in a later read was sent after the client saw close-ok
                    self.closed_by_client.clear();
                    break;
                }
                Err(e) => {
                    self.fail(0, e).await;
                    // A framing error leaves the stream unparseable: stop reading it.
                    rbuf.clear();
                    break;
                }
            };
            self.handle_frame(frame).await;
        }
    }

    /// Send what this wake-up produced; true when anything was sent.
    fn flush(&mut self) -> bool {
        self.emit_confirms();
        if self.session.out.is_empty() {
            return false;
        }
        self.writer.send(Out::Data(self.session.out.take()));
        for (credit, n) in self.releases.drain(..) {
            self.writer.send(Out::Release(credit, n));
        }
        true
    }

    /// One round of basic.ack / basic.nack per channel that had publishes settled during
    /// this wake-up (see `Confirms::emit`).
    fn emit_confirms(&mut self) {
        let out = &mut self.session.out;
        for ch_id in std::mem::take(&mut self.session.confirm_dirty) {
            let Some(ch) = self.channels.get_mut(&ch_id) else {
                continue;
            };
            if let Some(confirms) = ch.confirms.as_mut() {
                let due = confirms.acks_due() as u64;
                self.session.vhost.count_confirmed(due);
                ch.confirmed += due;
                confirms.emit(|tag, multiple, ack| out.confirm(ch_id, tag, multiple, ack));
            }
        }
    }

    /// An open channel ended (closed by either side, or with the connection).
    fn channel_gone(&self) {
        self.session.broker.metrics.channels_closed.inc();
        self.info
            .channels
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Send connection.close for `e` and wait (bounded) for close-ok.
    fn begin_close(&mut self, e: &AmqpError) {
        if self.closing.is_some() {
            return;
        }
        tracing::info!(code = e.code, "closing connection: {}", e.text);
        self.session.out.connection_close(e);
        self.closing = Some(Instant::now() + CLOSE_OK_TIMEOUT);
    }

    /// The broker raised or cleared an alarm, is stopping, or deleted our vhost or a user.
    fn on_signal(&mut self, signal: Signal) {
        let forced = match signal {
            Signal::Alarm(raised) => {
                self.set_blocked(raised && self.session.published);
                return;
            }
            Signal::Shutdown => {
                "broker forced connection closure with reason 'shutdown'".to_string()
            }
            Signal::VhostDeleted => format!("vhost '{}' is deleted", self.session.vhost.name),
            Signal::UserDeleted => {
                if self.session.broker.users.get(&self.session.user).is_some() {
                    return;
                }
                format!("user '{}' is deleted", self.session.user)
            }
        };
        self.begin_close(&AmqpError::new(reply::CONNECTION_FORCED, forced));
    }

    /// Stop (or resume) reading a publisher under the memory alarm, telling the client when
    /// it asked to be told.
    fn set_blocked(&mut self, blocked: bool) {
        if blocked == self.blocked {
            return;
        }
        self.blocked = blocked;
        if self.blocked_notify {
            let m = if blocked {
                connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: self.session.broker.alarm.reason().text().into(),
                })
            } else {
                connection::AMQPMethod::Unblocked(connection::Unblocked {})
            };
            self.session.out.method(0, &AMQPClass::Connection(m));
        }
    }

    /// Every open channel, for the management API, in channel-number order.
    fn channel_snapshots(&mut self) -> Vec<ChannelSnapshot> {
        let mut out: Vec<ChannelSnapshot> = self
            .channels
            .iter_mut()
            .map(|(number, ch)| ch.snapshot(*number))
            .collect();
        out.sort_by_key(|c| c.number);
        out
    }

    /// RabbitMQ's `consumer_timeout`: a channel whose oldest unacknowledged delivery (the
    /// lowest delivery tag) is older than `timeout` is closed with 406, which requeues
    /// its unacknowledged messages.
    async fn expire_deliveries(&mut self, timeout: Duration) {
        let now = self.session.broker.clock.now();
        let late: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, ch)| ch.phase == channel::Phase::Open)
            .filter(|(_, ch)| {
                ch.unacked
                    .first_key_value()
                    .is_some_and(|(_, u)| now.duration_since(u.delivered_at) > timeout)
            })
            .map(|(n, _)| *n)
            .collect();
        for ch in late {
            let ms = timeout.as_millis();
            tracing::warn!(
                channel = ch,
                "delivery acknowledgement timed out after {ms} ms"
            );
            let e = AmqpError::precondition_failed(format!(
                "delivery acknowledgement on channel {ch} timed out. Timeout value used: {ms} ms. This timeout value can be configured, see consumers doc guide to learn more"
            ));
            self.fail(ch, e).await;
        }
    }

    /// Everything the connection held goes back: channels torn down, exclusive queues deleted.
    async fn teardown(&mut self) {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            if let Some(ch) = self.channels.remove(&id) {
                if ch.phase == channel::Phase::Open {
                    self.channel_gone();
                }
                handlers::teardown_channel(ch).await;
            }
        }
        for q in std::mem::take(&mut self.session.exclusive_queues) {
            let _ = self.session.vhost.delete_queue(&q, false, false).await;
        }
    }
}
