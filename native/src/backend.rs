//! One backend: its HTTP/2 connections, their in-flight streams, and its health rank.
//!
//! A backend normally has one connection; another is opened only when every open one has as
//! many streams in flight as its peer allows (h2's `SendRequest::ready` reports ready even
//! then, hyperium/h2#848, so the engine counts streams itself), up to `MAX_CONNECTIONS`.
//! A connection counts as up only once the peer answered a PING within the connect timeout:
//! a peer that accepts TCP and never speaks HTTP/2 fails the connect instead of swallowing
//! calls. The same task that drives the connection keeps it alive with PINGs
//! (`KEEPALIVE_INTERVAL`, `KEEPALIVE_TIMEOUT`, as the grpcio plane's channel options) and
//! marks it closed when it ends. With `--backend-tls` the TCP connection is wrapped in TLS
//! (`tls.rs`: the configuration in use when the connect starts) before HTTP/2; a failed TLS
//! handshake counts as a backend handshake failure. A task per backend
//! (`keep_connected`) keeps one connection open while the backend is in the set, reconnecting
//! with backoff when it ends, as grpcio's channels do. When a backend leaves the endpoint set
//! it forgets its connections; h2 closes each when the last call on it has ended.
//!
//! With `--health-check`, its checker task (`checker.rs`) keeps its `health` verdict, which
//! ranks it `CHECK_FAILED` lower while it fails.
//!
//! Concurrency: used on the runtime thread only, except `rank`, read by the worker's Python
//! thread for status reports; the locks are held for a few instructions, never across an
//! await.

use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::time::{sleep, timeout, timeout_at};

use crate::balance::{CHECK_FAILED, Ewma, FAILING, READY, Strikes, UNKNOWN};
use crate::engine::Shared;
use crate::locality::{Placement, placed_rank};
use crate::stats::CallCounts;
use crate::tls::Tls;
use crate::verdicts::Health;

/// Connections per backend at most; past that, calls queue in h2 on the least busy one.
const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long gets a PING; no answer within the timeout closes it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 settings towards backends: large windows so one connection carries many calls at
/// full speed; a bounded send buffer per stream; backend metadata up to 4× the proxy's limit
/// (`MAX_PARSED_HEADER_LIST`), so that the call itself answers metadata over the limit
/// RESOURCE_EXHAUSTED as the grpcio plane does (h2 would fail the stream PROTOCOL_ERROR).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
const MAX_FRAME_SIZE: u32 = 64 << 10;
const MAX_SEND_BUFFER: usize = 1 << 20;
pub const MAX_METADATA_BYTES: u32 = 256 << 10;
const MAX_PARSED_HEADER_LIST: u32 = 4 * MAX_METADATA_BYTES;
/// Reconnecting a backend whose connect failed: gRPC's connection backoff (1 s, ×1.6, ±20%
/// jitter), capped lower (30 s, not 120 s) so a restarted backend is back within that.
const RECONNECT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const RECONNECT_MULTIPLIER: f64 = 1.6;
const RECONNECT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `delay` ±20%, spread by the clock's low bits (no random generator needed for this).
fn jittered(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    delay.mul_f64(0.8 + f64::from(nanos % 4001) / 10_000.0)
}

/// Set once when a connection's driving task ends; `wait` returns from then on.
#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    notify: Notify,
}

impl Closed {
    fn close(&self) {
        self.flag.store(true, Release);
        self.notify.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.flag.load(Acquire)
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable(); // registered before the flag is read: no lost wake-up
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

pub struct Connection {
    send: SendRequest<Bytes>,
    in_flight: AtomicUsize,
    closed: Arc<Closed>,
}

impl Connection {
    fn usable(&self) -> bool {
        !self.closed.is_closed()
    }

    fn has_room(&self) -> bool {
        self.in_flight.load(Relaxed) < self.send.current_max_send_streams().max(1)
    }
}

/// A stream slot on a connection, held for one attempt.
pub struct Lease {
    connection: Arc<Connection>,
}

impl Lease {
    pub fn sender(&self) -> SendRequest<Bytes> {
        self.connection.send.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.connection.in_flight.fetch_sub(1, Relaxed);
    }
}

#[derive(Default)]
struct State {
    connections: Vec<Arc<Connection>>,
    connect_failed: bool,
    /// Connects tried so far, and why the last one failed: a call that waited for another's
    /// connect takes its result rather than trying again (one connect timeout, not two).
    connects: u64,
    last_failure: String,
    /// The last connect failed by running out of its time (`connect_timeout`), not refused.
    connect_timed_out: bool,
    strikes: Strikes,
    /// Of its response times (to the response headers), for least-request's tie-break.
    latency: Ewma,
    removed: bool,
}

pub struct Backend {
    /// `host:port` (`[v6]:port`): the metrics label, the `:authority` sent, where to connect.
    pub address: String,
    pub counts: Arc<CallCounts>,
    /// Attempts running on it now, in this worker (least-request's load).
    in_flight: AtomicUsize,
    /// Its `Placement`, which a new endpoint set may change without replacing the backend.
    locality: AtomicU8,
    ring: AtomicU8,
    /// Its health checks' verdict (`--health-check`; not checked: passes).
    pub health: Health,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
}

/// One attempt on a backend, counted in flight from its start until it is dropped.
pub struct InFlight<'a> {
    backend: &'a Backend,
    started: Instant,
}

impl InFlight<'_> {
    /// The response headers (or the whole Trailers-Only answer) came: a latency sample.
    pub fn responded(&self) {
        let now = Instant::now();
        let seconds = now.saturating_duration_since(self.started).as_secs_f64();
        self.backend.state().latency.observe(seconds, now);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Backend {
    pub fn new(address: String, counts: Arc<CallCounts>, placement: Placement) -> Backend {
        Backend {
            address,
            counts,
            in_flight: AtomicUsize::new(0),
            locality: AtomicU8::new(placement.locality),
            ring: AtomicU8::new(placement.ring),
            health: Health::default(),
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An attempt starts on this backend; it counts in flight until the guard is dropped.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight {
            backend: self,
            started: Instant::now(),
        }
    }

    /// Least-request's load: (attempts in flight, response-time EWMA seconds).
    pub fn load(&self) -> (usize, f64) {
        (self.in_flight.load(Relaxed), self.state().latency.value())
    }

    pub fn place(&self, placement: Placement) {
        self.locality.store(placement.locality, Relaxed);
        self.ring.store(placement.ring, Relaxed);
    }

    /// Its locality, the index of its `locality` label (`locality::LOCALITIES`).
    pub fn locality(&self) -> u8 {
        self.locality.load(Relaxed)
    }

    /// The rank the pickers compare: health (`CHECK_FAILED` more while its health check
    /// fails), then ring (`locality::placed_rank`).
    pub fn placed_rank(&self, now: Instant) -> u8 {
        let checked = if self.health.failed() {
            CHECK_FAILED
        } else {
            0
        };
        placed_rank(self.rank(now) + checked, self.ring.load(Relaxed))
    }

    /// 0 READY, 1 not known to be broken, 2 failing (`balance.rs`).
    pub fn rank(&self, now: Instant) -> u8 {
        let state = self.state();
        if state.strikes.active(now) {
            FAILING
        } else if state.connections.iter().any(|c| c.usable()) {
            READY
        } else if state.connect_failed {
            FAILING
        } else {
            UNKNOWN
        }
    }

    /// Why the worker does not count this backend as healthy (`BackendCondition`), if so:
    /// its connection's failure first, then its health check's verdict, then passive health
    /// (the grpcio plane's order).
    pub fn condition(&self, now: Instant) -> Option<&'static str> {
        let state = self.state();
        if state.connect_failed && !state.connections.iter().any(|c| c.usable()) {
            Some(if state.connect_timed_out {
                "connect_timeout"
            } else {
                "failing"
            })
        } else if let Some(condition) = self.health.condition() {
            Some(condition.name())
        } else if state.strikes.active(now) {
            Some("struck")
        } else {
            None
        }
    }

    pub fn strike(&self, now: Instant) {
        self.state().strikes.strike(now);
    }

    pub fn answered(&self) {
        self.state().strikes.clear();
    }

    /// New backend TLS material: calls go to new connections (made with it) from now on;
    /// the open ones close when their calls end, as grpcio's renewed channels do.
    pub fn renew(&self) {
        self.state().connections.clear();
    }

    /// Left the endpoint set: no new connections; open ones close when their calls end.
    pub fn remove(&self) {
        let mut state = self.state();
        state.removed = true;
        state.connections.clear();
    }

    /// Whether it left the endpoint set.
    pub fn removed(&self) -> bool {
        self.state().removed
    }

    fn lease_open(&self) -> Option<Lease> {
        let mut state = self.state();
        state.connections.retain(|c| c.usable());
        let connection = state.connections.iter().find(|c| c.has_room()).cloned()?;
        connection.in_flight.fetch_add(1, Relaxed);
        Some(Lease { connection })
    }

    fn lease_least_busy(&self) -> Option<Lease> {
        let state = self.state();
        let connection = state
            .connections
            .iter()
            .filter(|c| c.usable())
            .min_by_key(|c| c.in_flight.load(Relaxed))
            .cloned()?;
        connection.in_flight.fetch_add(1, Relaxed);
        Some(Lease { connection })
    }

    /// A stream slot: on an open connection with room, else on a new one. Err: no connection
    /// could be made within `connect_timeout` (the reason, for the status message).
    pub async fn lease(&self, connect_timeout: Duration, tls: &Tls) -> Result<Lease, String> {
        if let Some(lease) = self.lease_open() {
            return Ok(lease);
        }
        let connects_before = self.state().connects;
        let _one_connect_at_a_time = self.connecting.lock().await;
        if let Some(lease) = self.lease_open() {
            return Ok(lease);
        }
        {
            let state = self.state();
            if state.connects != connects_before && state.connect_failed {
                return Err(state.last_failure.clone());
            }
        }
        let (full, removed) = {
            let state = self.state();
            (state.connections.len() >= MAX_CONNECTIONS, state.removed)
        };
        if full {
            if let Some(lease) = self.lease_least_busy() {
                return Ok(lease);
            }
        }
        if removed {
            return Err("the backend left the endpoint set".into());
        }
        let started = Instant::now();
        let connected = connect(&self.address, connect_timeout, tls).await;
        self.state().connects += 1;
        match connected {
            Ok(connection) => {
                let mut state = self.state();
                state.connect_failed = false;
                connection.in_flight.fetch_add(1, Relaxed);
                let lease = Lease {
                    connection: connection.clone(),
                };
                if !state.removed {
                    state.connections.push(connection);
                }
                self.health.connected();
                Ok(lease)
            }
            Err(why) => {
                let mut state = self.state();
                state.connect_failed = true;
                // Its timers end it at its deadline, never before; a refusal takes
                // milliseconds.
                state.connect_timed_out = started.elapsed() >= connect_timeout;
                state.last_failure.clone_from(&why);
                Err(why)
            }
        }
    }

    /// Keep a connection to this backend open while it is in the set, as the grpcio plane
    /// keeps its channels connected: connect ahead of the first call (when the backend joins
    /// the set), and again whenever the connection ends (a backend restarted on the same
    /// address, new backend TLS material retiring the old connection), retrying a failed
    /// connect after `RECONNECT_INITIAL_BACKOFF`, growing to `RECONNECT_MAX_BACKOFF`. Without
    /// it, a backend whose connection ended would rank below the READY ones and never get a
    /// call again while any of them is up. Ends when the backend leaves the set.
    pub async fn keep_connected(&self, shared: &Shared) {
        let mut backoff = RECONNECT_INITIAL_BACKOFF;
        loop {
            if self.state().removed {
                return;
            }
            match self.lease(shared.connect_timeout, &shared.tls).await {
                Ok(lease) => {
                    backoff = RECONNECT_INITIAL_BACKOFF;
                    let closed = lease.connection.closed.clone();
                    drop(lease);
                    closed.wait().await;
                }
                Err(_) => {
                    sleep(jittered(backoff)).await;
                    backoff = backoff
                        .mul_f64(RECONNECT_MULTIPLIER)
                        .min(RECONNECT_MAX_BACKOFF);
                }
            }
        }
    }
}

async fn connect(
    address: &str,
    connect_timeout: Duration,
    tls: &Tls,
) -> Result<Arc<Connection>, String> {
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let backend_tls = tls.backend.load_full(); // the configuration in use as this connect starts
    let tcp = match timeout_at(deadline, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("connect to {address}: {e}")),
        Err(_) => return Err(format!("connect to {address}: timed out")),
    };
    let _ = tcp.set_nodelay(true);
    let Some(backend_tls) = backend_tls else {
        return speak_h2(address, tcp, deadline, None).await;
    };
    let name = backend_tls.name_for(address)?;
    let connector = tokio_rustls::TlsConnector::from(backend_tls.config.clone());
    match timeout_at(deadline, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => speak_h2(address, stream, deadline, Some(tls)).await,
        Ok(Err(e)) => {
            tls.backend_failed();
            Err(format!("TLS handshake failed with {address}: {e}"))
        }
        Err(_) => {
            tls.backend_failed();
            Err(format!("TLS handshake failed with {address}: timed out"))
        }
    }
}

/// HTTP/2 over a connected `io` (TCP, or TLS with `tls` given), up once the peer answered a
/// PING by `deadline`. A TLS alert from the peer in that time is a failed TLS handshake too:
/// with TLS 1.3 the client's side completes before the server checks the client certificate,
/// so a backend that refuses the proxy's (or its absence) says so only now.
async fn speak_h2<T>(
    address: &str,
    io: T,
    deadline: tokio::time::Instant,
    tls: Option<&Tls>,
) -> Result<Arc<Connection>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_PARSED_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(io);
    let (send, connection) = match timeout_at(deadline, handshake).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            if let (Some(tls), true) = (tls, by_tls(&e)) {
                tls.backend_failed();
                return Err(format!("TLS handshake failed with {address}: {e}"));
            }
            return Err(format!("HTTP/2 handshake with {address}: {e}"));
        }
        Err(_) => return Err(format!("HTTP/2 handshake with {address}: timed out")),
    };
    let closed = Arc::new(Closed::default());
    let (up_tx, up_rx) = oneshot::channel();
    tokio::spawn(drive(connection, deadline, up_tx, closed.clone()));
    match up_rx.await {
        Ok(Ok(())) => Ok(Arc::new(Connection {
            send,
            in_flight: AtomicUsize::new(0),
            closed,
        })),
        Ok(Err((why, tls_caused))) => match tls {
            Some(tls) if tls_caused => {
                tls.backend_failed();
                Err(format!("TLS handshake failed with {address}: {why}"))
            }
            _ => Err(format!("{address}: {why}")),
        },
        Err(_) => Err(format!("{address}: the connection ended")),
    }
}

/// Whether an HTTP/2 error, on a TLS connection before the peer's first answer, came from
/// the TLS layer under it: an alert or a bad record, or the peer ending the TLS session
/// without close_notify (what a gRPC server does when it refuses the client's certificate
/// after a TLS 1.3 handshake that, on the client's side, had completed).
fn by_tls(e: &h2::Error) -> bool {
    e.get_io().is_some_and(|io| {
        io.kind() == std::io::ErrorKind::UnexpectedEof
            || io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
    })
}

/// Drives one backend connection to its end: proves the peer speaks HTTP/2 (a PING answered
/// by `deadline`), then keeps it alive with PINGs. Marks it closed when it ends.
async fn drive<T>(
    mut connection: h2::client::Connection<T, Bytes>,
    deadline: tokio::time::Instant,
    up: oneshot::Sender<Result<(), (String, bool)>>,
    closed: Arc<Closed>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut pings) = connection.ping_pong() else {
        let _ = up.send(Err(("no PING handle".into(), false)));
        return;
    };
    let first = tokio::select! {
        ended = &mut connection => Err(match ended {
            Ok(()) => ("closed the connection at once".to_owned(), false),
            Err(e) => (e.to_string(), by_tls(&e)),
        }),
        pong = timeout_at(deadline, pings.ping(h2::Ping::opaque())) => match pong {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err((e.to_string(), by_tls(&e))),
            Err(_) => Err(("no HTTP/2 answer (SETTINGS, PING) within the connect timeout".into(), false)),
        },
    };
    let up_ok = first.is_ok();
    let _ = up.send(first);
    if up_ok {
        loop {
            tokio::select! {
                _ = &mut connection => break,
                _ = sleep(KEEPALIVE_INTERVAL) => {
                    let alive = tokio::select! {
                        _ = &mut connection => false,
                        pong = timeout(KEEPALIVE_TIMEOUT, pings.ping(h2::Ping::opaque())) =>
                            matches!(pong, Ok(Ok(_))),
                    };
                    if !alive {
                        break;
                    }
                }
            }
        }
    }
    closed.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_for_a_connection_to_close_returns_whether_it_closed_before_or_after() {
        let closed = Arc::new(Closed::default());
        let waiter = tokio::spawn({
            let closed = closed.clone();
            async move { closed.wait().await }
        });
        tokio::task::yield_now().await; // the waiter is registered and asleep
        assert!(!waiter.is_finished());
        closed.close();
        waiter.await.unwrap();
        closed.wait().await; // already closed: at once
    }

    #[test]
    fn reconnect_backoff_is_jittered_within_twenty_percent() {
        for _ in 0..100 {
            let delay = jittered(Duration::from_secs(10));
            assert!(delay >= Duration::from_secs(8) && delay <= Duration::from_secs(12));
        }
    }
}
