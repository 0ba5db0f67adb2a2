//! A client connection's intake: how much of the client's input h2 may read before the engine
//! has taken the streams it opened.
//!
//! h2's server reads every frame the socket has before `accept` hands out one stream, and
//! counts each stream the client resets before it was accepted against
//! `max_pending_accept_reset_streams` (server.rs). A well-behaved client can send many such
//! streams at once: a grpcio client that honours the stream limit and cancels its queued calls
//! opens each queued stream as a slot frees and resets it at once (h2#856), thousands of
//! HEADERS + RST_STREAM pairs in one burst. Read whole, they look like a rapid-reset flood and
//! h2 sends GOAWAY ENHANCE_YOUR_CALM; the client was closed for honouring the limit.
//!
//! So reads come in turns: `Intake` wraps the socket and hands h2 at most `TURN_STREAMS`
//! HEADERS frames per turn (it parses frame headers only: 9 bytes each, payloads skipped),
//! keeping the rest of what it read for later; `accept` starts the next turn only once h2 has
//! no stream left to accept. No more than `TURN_STREAMS` streams ever wait unaccepted, whatever
//! the client sends, so the reset guard is never reached; a rapid-reset flood costs each stream
//! an accept and a drop (call.rs refuses to forward a stream the client reset before the engine
//! took it), and a connection yields the engine's thread to the others between turns.
//!
//! Concurrency: `Intake` is polled by the connection's task only (h2 reads on it), and `Turn`
//! is shared with the same task's accept loop; atomics only because tasks must be `Send`.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use h2::RecvStream;
use h2::server::{Connection, SendResponse};
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// HEADERS frames h2 may read per turn: streams that may wait to be accepted at most.
pub const TURN_STREAMS: usize = 16;
/// The client connection preface (RFC 9113 §3.4), before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;

/// Where a client's byte stream stands, frame by frame, and how many HEADERS frames this turn
/// has passed. Pure: fed bytes, it says how many of them the turn may pass on.
#[derive(Debug)]
pub struct FrameScan {
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    payload_left: usize,
    opened: usize,
    cap: usize,
    greeted: bool,
}

impl FrameScan {
    pub fn new(cap: usize) -> FrameScan {
        FrameScan {
            preface_left: PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            payload_left: 0,
            opened: 0,
            cap,
            greeted: false,
        }
    }

    /// Whether the client's whole connection preface has passed: the 24 octets and the frame
    /// after them (which must be its SETTINGS, RFC 9113 §3.4; h2 checks that).
    pub fn greeted(&self) -> bool {
        self.greeted
    }

    pub fn new_turn(&mut self) {
        self.opened = 0;
    }

    /// How many leading bytes of `bytes` (what follows the bytes passed so far) this turn may
    /// pass on. It stops at the frame boundary before the HEADERS frame one over the cap, or
    /// before a frame whose type is not known yet once the cap is reached.
    pub fn pass(&mut self, bytes: &[u8]) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            if self.preface_left > 0 {
                let take = self.preface_left.min(bytes.len() - at);
                self.preface_left -= take;
                at += take;
            } else if self.payload_left > 0 {
                let take = self.payload_left.min(bytes.len() - at);
                self.payload_left -= take;
                at += take;
                self.greeted |= self.payload_left == 0;
            } else {
                if self.header_len == 0 && self.opened >= self.cap {
                    // A frame boundary with the turn full: go on only past a frame known
                    // not to be HEADERS.
                    match bytes.get(at + 3) {
                        Some(&kind) if kind != HEADERS => {}
                        _ => return at,
                    }
                }
                self.header[self.header_len] = bytes[at];
                self.header_len += 1;
                at += 1;
                if self.header_len == 4 && self.header[3] == HEADERS {
                    self.opened += 1;
                }
                if self.header_len == FRAME_HEADER_LEN {
                    let [a, b, c, ..] = self.header;
                    self.payload_left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                    self.header_len = 0;
                    self.greeted |= self.payload_left == 0;
                }
            }
        }
        at
    }
}

/// Shared by a connection's `Intake` and its accept loop.
#[derive(Debug, Default)]
pub struct Turn {
    /// Every stream h2 has read so far was accepted: the intake may start a new turn.
    all_taken: AtomicBool,
    /// The intake stopped reading for the turn is full; the accept loop must wake the task.
    held: AtomicBool,
    /// The client's connection preface has passed whole (`FrameScan::greeted`).
    greeted: AtomicBool,
}

impl Turn {
    /// Whether the client has completed its connection preface (SETTINGS included): until
    /// then the connection is still in its handshake, and bounded by its timeout.
    pub fn greeted(&self) -> bool {
        self.greeted.load(Relaxed)
    }
}

/// The socket as h2 reads it: in turns (see the module docs). Writes pass straight through.
pub struct Intake<T> {
    inner: T,
    scan: FrameScan,
    /// Bytes read from the socket that the current turn could not pass on.
    kept: BytesMut,
    turn: Arc<Turn>,
}

/// Wrap a client connection's socket; the `Turn` goes to `accept`.
pub fn intake<T>(inner: T) -> (Intake<T>, Arc<Turn>) {
    let turn = Arc::new(Turn::default());
    let io = Intake {
        inner,
        scan: FrameScan::new(TURN_STREAMS),
        kept: BytesMut::new(),
        turn: turn.clone(),
    };
    (io, turn)
}

impl<T: AsyncRead + Unpin> AsyncRead for Intake<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = this.read(cx, buf);
        if this.scan.greeted() {
            this.turn.greeted.store(true, Relaxed);
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> Intake<T> {
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.turn.all_taken.swap(false, Relaxed) {
            self.scan.new_turn();
        }
        if !self.kept.is_empty() {
            let offered = self.kept.len().min(buf.remaining());
            let passed = self.scan.pass(&self.kept[..offered]);
            if passed == 0 {
                self.turn.held.store(true, Relaxed);
                return Poll::Pending; // `accept` wakes the task when the turn is over
            }
            buf.put_slice(&self.kept[..passed]);
            self.kept.advance(passed);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        let passed = self.scan.pass(read);
        if passed < read.len() {
            self.kept.extend_from_slice(&read[passed..]);
            buf.set_filled(before + passed);
            if passed == 0 {
                self.turn.held.store(true, Relaxed);
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Intake<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

type Accepted = Option<Result<(Request<RecvStream>, SendResponse<bytes::Bytes>), h2::Error>>;

/// `Connection::accept`, in turns: when h2 has no stream left to accept, every stream of the
/// turn has been taken, and the intake may read the next one.
pub async fn accept<T>(
    connection: &mut Connection<Intake<T>, bytes::Bytes>,
    turn: &Turn,
) -> Accepted
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    poll_fn(|cx| {
        let polled = connection.poll_accept(cx);
        if polled.is_pending() {
            turn.all_taken.store(true, Relaxed);
            if turn.held.swap(false, Relaxed) {
                cx.waker().wake_by_ref(); // the intake registered no waker: read on at once
            }
        }
        polled
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let mut bytes = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            0,
        ];
        bytes.extend_from_slice(&[0, 0, 0, 1]);
        bytes.extend(std::iter::repeat_n(0xAA, payload));
        bytes
    }

    fn headers_and_resets(pairs: usize) -> Vec<u8> {
        (0..pairs)
            .flat_map(|_| [frame(HEADERS, 12), frame(0x3, 4)].concat())
            .collect()
    }

    #[test]
    fn a_turn_passes_its_cap_of_headers_frames_and_what_follows_them() {
        let pair = frame(HEADERS, 12).len() + frame(0x3, 4).len();
        let input = [PREFACE, &frame(0x4, 6), &headers_and_resets(40)].concat();
        let mut scan = FrameScan::new(16);
        let passed = scan.pass(&input);
        assert_eq!(passed, PREFACE.len() + 15 + 16 * pair);
        assert_eq!(scan.pass(&input[passed..]), 0, "the turn is full");
        scan.new_turn();
        assert_eq!(scan.pass(&input[passed..]), 16 * pair);
    }

    #[test]
    fn frames_split_anywhere_are_counted_once_and_no_turn_passes_its_cap() {
        let input = [PREFACE, &headers_and_resets(10), &frame(0x0, 70_000)].concat();
        for chunk in [1, 2, 5, 9, 13, 4096] {
            let mut scan = FrameScan::new(3);
            let (mut at, mut counted) = (0, 0);
            while at < input.len() {
                let end = (at + chunk).min(input.len());
                let passed = scan.pass(&input[at..end]);
                assert!(
                    scan.opened <= 3,
                    "chunks of {chunk}: {} in one turn",
                    scan.opened
                );
                at += passed;
                if passed == 0 {
                    counted += scan.opened;
                    scan.new_turn();
                }
            }
            assert_eq!(counted + scan.opened, 10, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_full_turn_waits_for_the_type_of_the_next_frame() {
        let mut scan = FrameScan::new(1);
        let input = [PREFACE, &frame(HEADERS, 3)].concat();
        assert_eq!(scan.pass(&input), input.len());
        assert_eq!(
            scan.pass(&[0, 0, 8]),
            0,
            "three bytes of a frame header say no type"
        );
        assert_eq!(scan.pass(&frame(0x6, 8)), 17, "a PING goes through");
        assert_eq!(scan.pass(&frame(HEADERS, 8)), 0);
    }

    #[test]
    fn the_preface_is_whole_once_the_frame_after_the_24_octets_has_passed() {
        let mut scan = FrameScan::new(16);
        assert_eq!(scan.pass(PREFACE), PREFACE.len());
        assert!(!scan.greeted());
        let settings = frame(0x4, 6);
        scan.pass(&settings[..10]);
        assert!(!scan.greeted());
        scan.pass(&settings[10..]);
        assert!(scan.greeted());
        let mut empty = FrameScan::new(16);
        empty.pass(&[PREFACE, &frame(0x4, 0)].concat());
        assert!(empty.greeted());
    }

    #[test]
    fn large_data_frames_pass_whole() {
        let mut scan = FrameScan::new(1);
        let input = [PREFACE, &frame(0x0, 1 << 20), &frame(0x0, 5)].concat();
        assert_eq!(scan.pass(&input), input.len());
    }
}
