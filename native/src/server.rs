//! The listener and the client connections: h2c on a socket the worker's Python bound.
//!
//! Each accepted connection gets a task that drives it and spawns a task per call
//! (`call.rs`). Every HTTP/2 knob is set here, not left to h2's defaults: the stream limit
//! (`--max-concurrent-streams`), windows, frame size, the header list size (4× the metadata
//! limit, so the call itself refuses 256 KiB to 1 MiB as RESOURCE_EXHAUSTED and counts it;
//! beyond that h2 answers 431), the send buffer, and h2's rapid-reset guards
//! (`max_pending_accept_reset_streams`, `max_local_error_reset_streams`, CVE-2023-44487).
//! A client that never completes its preface (its SETTINGS included) is dropped after
//! `HANDSHAKE_TIMEOUT`. h2 reads the socket through `intake.rs`, in turns of a few streams
//! that are accepted before it reads on.
//!
//! With listener TLS (`tls.rs`), each connection first reads the client's ClientHello, then
//! takes the configuration in use at that moment for its whole life; the TLS handshake and
//! the HTTP/2 preface share the one `HANDSHAKE_TIMEOUT`. A failed handshake is counted
//! (`Tls::listener_failed`) unless the client went away before sending anything TLS could
//! read (a TCP probe).
//!
//! Phases come from a watch channel: Serving → Draining (stop accepting; GOAWAY on every
//! connection, calls finish) → Cancelling (connections are dropped, their calls fail).
//! `--max-connection-age` sends one connection a GOAWAY after its jittered age, and with a
//! grace drops it that long after. Every connection and call task holds a `Tracker` clone, so
//! the engine knows when the last one has ended.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::call::serve_call;
use crate::engine::Shared;
use crate::intake::{accept, intake};

/// Seconds a new connection may take to send its preface and SETTINGS (a slowloris bound).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
const MAX_FRAME_SIZE: u32 = 64 << 10;
const MAX_SEND_BUFFER: usize = 1 << 20;
/// Header bytes h2 accepts from a client before the call sees them (see the module docs).
const MAX_PARSED_HEADER_LIST: u32 = 4 * crate::backend::MAX_METADATA_BYTES;
/// Streams a client may reset before the worker accepted them (CVE-2023-44487). The intake
/// lets no more than `intake::TURN_STREAMS` wait unaccepted, so this is a safety net: even a
/// client that opens and resets thousands of streams at once, as a grpcio client cancelling
/// its queued calls does (h2#856), never reaches it.
const MAX_PENDING_ACCEPT_RESETS: usize = 200;
/// Streams the worker may reset for a client's protocol errors before it sends GOAWAY.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Serving,
    Draining,
    Cancelling,
}

/// Held by every connection and call task; dropped when it ends.
pub type Tracker = mpsc::Sender<()>;

/// Accept connections on the route's listeners (one per address its host names) until the
/// phase leaves Serving (Ok) or a listener fails for good (Err: the engine ends and the worker
/// is replaced).
pub async fn accept_loop(
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    mut phase: watch::Receiver<Phase>,
    tracker: Tracker,
) -> Result<(), String> {
    let mut first = 0;
    loop {
        tokio::select! {
            accepted = accept_any(&listeners, &mut first) => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(serve_socket(shared.clone(), socket, phase.clone(), tracker.clone()));
                }
                Err(e) if is_transient(&e) => tokio::time::sleep(ACCEPT_BACKOFF).await,
                Err(e) => return Err(format!("accepting connections failed: {e}")),
            },
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Serving {
                    return Ok(()); // the listener is dropped: no more connections
                }
            }
        }
    }
}

/// A connection from any of `listeners`, asked in turn from `first` on (one busy listener
/// must not starve the others).
async fn accept_any(
    listeners: &[TcpListener],
    first: &mut usize,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    poll_fn(|cx| {
        for i in 0..listeners.len() {
            let at = (*first + i) % listeners.len();
            if let Poll::Ready(accepted) = listeners[at].poll_accept(cx) {
                *first = (at + 1) % listeners.len();
                return Poll::Ready(accepted);
            }
        }
        Poll::Pending
    })
    .await
}

/// How long to wait after a transient accept error (out of descriptors or memory: accepting
/// again at once would spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Accept errors after which the listener still works: a connection that went away before it
/// was accepted, or descriptors or memory running out for a moment.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, OutOfMemory};
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | OutOfMemory
    ) || matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS))
}

fn builder(max_concurrent_streams: u32) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(max_concurrent_streams)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_PARSED_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS));
    builder
}

/// A new client connection: plaintext, or TLS when the listener has a configuration.
async fn serve_socket(
    shared: Arc<Shared>,
    socket: TcpStream,
    phase: watch::Receiver<Phase>,
    tracker: Tracker,
) {
    let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    if shared.tls.listener.load().is_none() {
        return serve_connection(shared, socket, handshake_deadline, phase, tracker).await;
    }
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), socket);
    let start = match tokio::time::timeout_at(handshake_deadline, acceptor).await {
        Ok(Ok(start)) => start,
        // Closed (or silent) before a ClientHello came: a TCP probe, not a handshake.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
        Err(_) => return,
        Ok(Err(_)) => return shared.tls.listener_failed(), // not TLS: a plaintext client
    };
    let Some(config) = shared.tls.listener.load_full() else {
        return;
    };
    match tokio::time::timeout_at(handshake_deadline, start.into_stream(config)).await {
        Ok(Ok(stream)) => {
            serve_connection(shared, stream, handshake_deadline, phase, tracker).await;
        }
        Ok(Err(_)) | Err(_) => shared.tls.listener_failed(),
    }
}

async fn serve_connection<T>(
    shared: Arc<Shared>,
    socket: T,
    handshake_deadline: Instant,
    mut phase: watch::Receiver<Phase>,
    tracker: Tracker,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (socket, turn) = intake(socket);
    let handshake = builder(shared.max_concurrent_streams).handshake(socket);
    let mut connection = match tokio::time::timeout_at(handshake_deadline, handshake).await {
        Ok(Ok(connection)) => connection,
        _ => return,
    };
    let far = Instant::now() + Duration::from_secs(86_400 * 365 * 10);
    let mut age_at = shared
        .max_connection_age
        .map_or(far, |age| Instant::now() + jittered(age));
    let mut close_at = far;
    let mut closing = false;
    let mut greeted = false;
    if *phase.borrow() != Phase::Serving {
        connection.graceful_shutdown();
        closing = true;
    }
    loop {
        tokio::select! {
            next = accept(&mut connection, &turn) => match next {
                Some(Ok((request, respond))) => {
                    let shared = shared.clone();
                    let tracker = tracker.clone();
                    tokio::spawn(async move {
                        serve_call(shared, request, respond).await;
                        drop(tracker);
                    });
                }
                Some(Err(_)) | None => return,
            },
            _ = sleep_until(age_at), if !closing => {
                connection.graceful_shutdown();
                closing = true;
                age_at = far;
                if let Some(grace) = shared.max_connection_age_grace {
                    close_at = Instant::now() + grace;
                }
            },
            _ = sleep_until(close_at) => return,
            _ = sleep_until(handshake_deadline), if !greeted => {
                greeted = turn.greeted();
                if !greeted {
                    return; // its preface never completed: a slowloris
                }
            },
            changed = phase.changed() => {
                let now = if changed.is_err() { Phase::Cancelling } else { *phase.borrow() };
                match now {
                    Phase::Serving => {}
                    Phase::Draining => if !closing {
                        connection.graceful_shutdown();
                        closing = true;
                    },
                    Phase::Cancelling => return,
                }
            }
        }
    }
}

/// The connection age, jittered by ±10% per connection as gRPC does, so connections made
/// together do not all reconnect together.
fn jittered(age: Duration) -> Duration {
    // A cheap per-connection spread: the low bits of the clock, not a random generator.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = f64::from(nanos % 2001) / 10_000.0 - 0.1; // -0.1 ..= +0.1
    age.mul_f64(1.0 + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_is_transient_and_a_broken_listener_is_not() {
        assert!(is_transient(&std::io::Error::from_raw_os_error(24)));
        assert!(is_transient(&std::io::ErrorKind::ConnectionAborted.into()));
        assert!(!is_transient(&std::io::Error::from_raw_os_error(88))); // ENOTSOCK
        assert!(!is_transient(&std::io::Error::from_raw_os_error(9))); // EBADF
    }

    #[test]
    fn connection_age_is_jittered_within_ten_percent() {
        for _ in 0..100 {
            let age = jittered(Duration::from_secs(100));
            assert!(age >= Duration::from_secs(90) && age <= Duration::from_secs(110));
        }
    }
}
