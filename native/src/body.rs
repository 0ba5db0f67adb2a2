//! Request bodies under flow control, kept for a replay while the call may still be retried.
//!
//! `RequestBody::pump` moves the client's DATA to the backend stream of the current attempt:
//! reserve capacity, wait for it, send what the peer's window allows, and release the
//! client's receive capacity only once a chunk is handed on, so a slow backend slows the
//! client rather than filling the worker's memory. Until the call commits (the client saw
//! the backend's headers) every chunk is also kept, up to `RETRY_BUFFER_BYTES`, so a
//! retried attempt replays the request from its start. `pump` is cancel-safe: its state
//! (the chunk in flight, the replay position) lives in the struct, so the attempt loop can
//! drop it in a `select!` and call it again.

use std::future::poll_fn;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http::HeaderMap;

use crate::retry::RETRY_BUFFER_BYTES;

#[derive(Debug, PartialEq, Eq)]
pub enum PumpError {
    /// The client's stream failed (it reset the stream, or its connection broke).
    Client,
    /// The backend's stream no longer takes data (it answered, reset, or broke).
    Backend,
}

pub struct RequestBody {
    body: RecvStream,
    replay: Vec<Bytes>,
    replay_bytes: usize,
    /// The request outgrew the replay buffer, or the call committed: no retry any more.
    unreplayable: bool,
    next_replay: usize,
    /// The chunk being sent, and how much of the client's window to release after it.
    pending: Option<(Bytes, usize)>,
    ended: bool,
    trailers: Option<HeaderMap>,
    end_sent: bool,
}

impl RequestBody {
    pub fn new(body: RecvStream) -> RequestBody {
        RequestBody {
            body,
            replay: Vec::new(),
            replay_bytes: 0,
            unreplayable: false,
            next_replay: 0,
            pending: None,
            ended: false,
            trailers: None,
            end_sent: false,
        }
    }

    /// Whether a new attempt could still send the whole request again.
    pub fn replayable(&self) -> bool {
        !self.unreplayable
    }

    /// Something reached the client: the call will not be retried; drop the replay buffer.
    pub fn commit(&mut self) {
        self.unreplayable = true;
        self.replay = Vec::new();
    }

    /// Start sending to a new attempt's stream, from the first chunk again.
    pub fn restart(&mut self) {
        self.next_replay = 0;
        self.pending = None;
        self.end_sent = false;
    }

    /// Send the request to `send` until the client half-closes (Ok) or a side fails.
    pub async fn pump(&mut self, send: &mut SendStream<Bytes>) -> Result<(), PumpError> {
        loop {
            if self.pending.is_none() && !self.next_chunk().await? {
                if !self.end_sent {
                    self.end_sent = true;
                    match self.trailers.clone() {
                        Some(trailers) => send.send_trailers(trailers),
                        None => send.send_data(Bytes::new(), true),
                    }
                    .map_err(|_| PumpError::Backend)?;
                }
                return Ok(());
            }
            self.send_pending(send).await?;
        }
    }

    /// Make the next chunk pending; false when the request has no more.
    async fn next_chunk(&mut self) -> Result<bool, PumpError> {
        if !self.unreplayable && self.next_replay < self.replay.len() {
            self.pending = Some((self.replay[self.next_replay].clone(), 0));
            self.next_replay += 1;
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        match self.body.data().await {
            Some(Ok(chunk)) => {
                let size = chunk.len();
                if !self.unreplayable {
                    if self.replay_bytes + size <= RETRY_BUFFER_BYTES {
                        self.replay.push(chunk.clone());
                        self.replay_bytes += size;
                        self.next_replay = self.replay.len();
                    } else {
                        self.commit();
                    }
                }
                self.pending = Some((chunk, size));
                Ok(true)
            }
            Some(Err(_)) => Err(PumpError::Client),
            None => {
                self.ended = true;
                self.trailers = match self.body.trailers().await {
                    Ok(trailers) => trailers,
                    Err(_) => return Err(PumpError::Client),
                };
                Ok(false)
            }
        }
    }

    async fn send_pending(&mut self, send: &mut SendStream<Bytes>) -> Result<(), PumpError> {
        while let Some((chunk, release)) = self.pending.as_mut() {
            if chunk.is_empty() {
                let release = *release;
                self.pending = None;
                if release > 0 {
                    let _ = self.body.flow_control().release_capacity(release);
                }
                break;
            }
            send.reserve_capacity(chunk.len());
            match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(0)) => continue,
                Some(Ok(room)) => {
                    let part = chunk.split_to(room.min(chunk.len()));
                    send.send_data(part, false)
                        .map_err(|_| PumpError::Backend)?;
                }
                Some(Err(_)) | None => return Err(PumpError::Backend),
            }
        }
        Ok(())
    }
}

/// Send `data` on `send` under flow control (the response path: backend → client). Err when
/// the stream no longer takes data (the client reset it or its connection broke).
pub async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(room)) => send.send_data(data.split_to(room.min(data.len())), false)?,
            Some(Err(e)) => return Err(e),
            None => return Err(h2::Error::from(h2::Reason::CANCEL)),
        }
    }
    Ok(())
}
