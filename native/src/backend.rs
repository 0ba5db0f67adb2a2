//! One backend: its HTTP/2 connections, their in-flight streams, and its health rank.
//!
//! A backend normally has one connection; another is opened only when every open one has as
//! many streams in flight as its peer allows (h2's `SendRequest::ready` reports ready even
//! then, hyperium/h2#848, so the engine counts streams itself), up to `MAX_CONNECTIONS`.
//! A connection counts as up only once the peer answered a PING within the connect timeout:
//! a peer that accepts TCP and never speaks HTTP/2 fails the connect instead of swallowing
//! calls. The same task that drives the connection keeps it alive with PINGs
//! (`KEEPALIVE_INTERVAL`, `KEEPALIVE_TIMEOUT`, as the grpcio plane's channel options) and
//! marks it closed when it ends. When a backend leaves the endpoint set it forgets its
//! connections; h2 closes each when the last call on it has ended.
//!
//! With `--health-check`, its checker task (`checker.rs`) keeps its `health` verdict, which
//! ranks it `CHECK_FAILED` lower while it fails.
//!
//! Concurrency: used on the runtime thread only, except `rank`, read by the worker's Python
//! thread for status reports; the locks are held for a few instructions, never across an
//! await.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout, timeout_at};

use crate::balance::{CHECK_FAILED, Ewma, FAILING, READY, Strikes, UNKNOWN};
use crate::locality::{Placement, placed_rank};
use crate::stats::CallCounts;
use crate::verdicts::Health;

/// Connections per backend at most; past that, calls queue in h2 on the least busy one.
const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long gets a PING; no answer within the timeout closes it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 settings towards backends: large windows so one connection carries many calls at
/// full speed; a bounded send buffer per stream; backend metadata up to the proxy's limit.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
const MAX_FRAME_SIZE: u32 = 64 << 10;
const MAX_SEND_BUFFER: usize = 1 << 20;
pub const MAX_METADATA_BYTES: u32 = 256 << 10;

pub struct Connection {
    send: SendRequest<Bytes>,
    in_flight: AtomicUsize,
    closed: Arc<AtomicBool>,
}

impl Connection {
    fn usable(&self) -> bool {
        !self.closed.load(Relaxed)
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
    pub async fn lease(&self, connect_timeout: Duration) -> Result<Lease, String> {
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
        let connected = connect(&self.address, connect_timeout).await;
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

    /// Connect ahead of the first call (when the backend joins the set), as the grpcio
    /// plane's channels do; the lease is returned at once.
    pub async fn warm_up(&self, connect_timeout: Duration) {
        drop(self.lease(connect_timeout).await);
    }
}

async fn connect(address: &str, connect_timeout: Duration) -> Result<Arc<Connection>, String> {
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let tcp = match timeout_at(deadline, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("connect to {address}: {e}")),
        Err(_) => return Err(format!("connect to {address}: timed out")),
    };
    let _ = tcp.set_nodelay(true);
    let handshake = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_METADATA_BYTES)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(tcp);
    let (send, connection) = match timeout_at(deadline, handshake).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(format!("HTTP/2 handshake with {address}: {e}")),
        Err(_) => return Err(format!("HTTP/2 handshake with {address}: timed out")),
    };
    let closed = Arc::new(AtomicBool::new(false));
    let (up_tx, up_rx) = oneshot::channel();
    tokio::spawn(drive(connection, deadline, up_tx, closed.clone()));
    match up_rx.await {
        Ok(Ok(())) => Ok(Arc::new(Connection {
            send,
            in_flight: AtomicUsize::new(0),
            closed,
        })),
        Ok(Err(why)) => Err(format!("{address}: {why}")),
        Err(_) => Err(format!("{address}: the connection ended")),
    }
}

/// Drives one backend connection to its end: proves the peer speaks HTTP/2 (a PING answered
/// by `deadline`), then keeps it alive with PINGs. Marks it closed when it ends.
async fn drive(
    mut connection: h2::client::Connection<TcpStream, Bytes>,
    deadline: tokio::time::Instant,
    up: oneshot::Sender<Result<(), String>>,
    closed: Arc<AtomicBool>,
) {
    let Some(mut pings) = connection.ping_pong() else {
        let _ = up.send(Err("no PING handle".into()));
        return;
    };
    let first = tokio::select! {
        ended = &mut connection => Err(match ended {
            Ok(()) => "closed the connection at once".to_owned(),
            Err(e) => e.to_string(),
        }),
        pong = timeout_at(deadline, pings.ping(h2::Ping::opaque())) => match pong {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no HTTP/2 answer (SETTINGS, PING) within the connect timeout".into()),
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
    closed.store(true, Relaxed);
}
