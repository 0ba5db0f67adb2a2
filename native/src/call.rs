//! One call, forwarded to one backend at a time, HTTP/2 stream to HTTP/2 stream.
//!
//! Per call: refuse metadata over `MAX_METADATA_BYTES` (RESOURCE_EXHAUSTED, counted), the
//! client's and the backend's answer's alike (as grpc core does on the grpcio plane); then
//! attempts, each on a backend picked by the balancer (`balance.rs`), READY first, not tried
//! before in this call. An attempt counts in flight on its backend until it ends, and its time
//! to the response headers feeds the backend's EWMA (least-request's load). It opens a stream
//! with the client's headers (`headers.rs`) and its remaining deadline, pumps the request
//! body (`body.rs`), and waits for the response headers. A failure before anything reached
//! the client (no connection, REFUSED_STREAM, GOAWAY, an I/O error, or a Trailers-Only
//! UNAVAILABLE) may be retried on another backend (`retry.rs`). Otherwise the response
//! headers go to the client (a Trailers-Only answer stays Trailers-Only), then the body under
//! flow control, then the trailers, unchanged.
//!
//! A stream the client reset before the engine took it (a cancelled queued call, or a
//! rapid-reset flood) is dropped unseen, as grpc core drops it: never forwarded, not counted.
//! A client RST_STREAM (or its connection going away) ends the call: every handle of the
//! backend stream is dropped, and h2 sends the backend RST_STREAM(CANCEL) at once. The
//! client's deadline is enforced here too: DEADLINE_EXCEEDED to the client, CANCEL to the
//! backend. Concurrency: one task per call on the engine's single runtime thread.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use tokio::time::sleep_until;

use crate::access::AccessRecord;
use crate::backend::{Backend, MAX_METADATA_BYTES};
use crate::body::{PumpError, RequestBody, send_all};
use crate::deadline;
use crate::engine::Shared;
use crate::headers::{grpc_status, list_size, request_headers, response_headers};
use crate::locality;
use crate::retry::{Failure, should_retry};
use crate::stats::{self, CallCounts};
use crate::status::{status_trailers, trailers_only};

/// What an attempt came to.
enum Attempt {
    /// The call is over with this gRPC status (forwarded, or sent by the engine).
    Done(u8),
    /// Failed before anything reached the client; the client has been told nothing yet.
    /// `answer` is the backend's own Trailers-Only response, to forward if no retry follows.
    Failed {
        why: Failure,
        detail: String,
        answer: Option<Response<()>>,
    },
}

/// Counts the call when it ends, however it ends (the task may be dropped at a drain), and
/// queues its access log record when the log is on.
struct Accounting<'a> {
    shared: &'a Shared,
    started: Instant,
    counts: Arc<CallCounts>,
    /// The `locality` label: the last picked backend's when it was picked.
    locality: u8,
    code: u8,
    /// With `--access-log`: the record, its method and backend filled in as they are known.
    record: Option<AccessRecord>,
}

impl Accounting<'_> {
    /// The call's method is known: its counters when calls are counted by method, and its
    /// access log record.
    fn method(&mut self, path: &str) {
        if self.shared.method_label {
            self.counts = self.shared.stats.counts_for_method("", path);
        }
        if self.shared.access.is_some() {
            self.record = Some(AccessRecord {
                method: path.to_owned(),
                backend: String::new(),
                code: self.code,
                seconds: 0.0,
            });
        }
    }

    /// An attempt goes to `backend`: the call counts there from now on.
    fn backend(&mut self, backend: &Backend, path: &str) {
        self.counts = if self.shared.method_label {
            self.shared.stats.counts_for_method(&backend.address, path)
        } else {
            backend.counts.clone()
        };
        self.locality = backend.locality();
        if let Some(record) = self.record.as_mut() {
            record.backend.clone_from(&backend.address);
        }
    }
}

impl Drop for Accounting<'_> {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        self.counts.record(self.code, self.locality);
        self.shared.stats.record_latency(took);
        self.shared.stats.call_ended();
        if let (Some(log), Some(mut record)) = (&self.shared.access, self.record.take()) {
            record.code = self.code;
            record.seconds = took.as_secs_f64();
            log.push(record);
        }
    }
}

pub async fn serve_call(
    shared: Arc<Shared>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    if reset_already(&mut respond) {
        return;
    }
    shared.stats.call_started();
    let mut accounting = Accounting {
        shared: &shared,
        started: Instant::now(),
        counts: shared.no_backend.clone(),
        locality: locality::NONE,
        code: stats::CANCELLED,
        record: None,
    };
    let code = forward(&shared, request, &mut respond, &mut accounting).await;
    accounting.code = code;
}

async fn forward(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    accounting: &mut Accounting<'_>,
) -> u8 {
    let started = tokio::time::Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    accounting.method(&path);
    let size = list_size(&parts.headers);
    if size > MAX_METADATA_BYTES as usize {
        let message = format!(
            "received metadata size exceeds the proxy's limit ({size} vs. {MAX_METADATA_BYTES} bytes)"
        );
        return trailers_only(respond, stats::RESOURCE_EXHAUSTED, &message);
    }
    let deadline = parts
        .headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(deadline::parse)
        .map(|timeout| started + timeout);
    let headers = request_headers(&parts.headers);
    let mut body = RequestBody::new(body);
    let table = shared.endpoints.load();
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    loop {
        let Some(backend) = shared.endpoints.pick(&table, &tried, Instant::now()) else {
            let message = if table.is_empty() {
                format!("no endpoints for target {}", shared.target)
            } else {
                format!("no backend of target {} could take the call", shared.target)
            };
            return trailers_only(respond, stats::UNAVAILABLE, &message);
        };
        tried.push(backend.clone());
        accounting.backend(&backend, &path);
        body.restart();
        let attempt = attempt(
            shared,
            &backend,
            &parts.method,
            &path,
            &headers,
            deadline,
            &mut body,
            respond,
        )
        .await;
        let (why, detail, answer) = match attempt {
            Attempt::Done(code) => {
                if code != stats::UNAVAILABLE {
                    backend.answered();
                    shared.budget().record_success();
                }
                return code;
            }
            Attempt::Failed {
                why,
                detail,
                answer,
            } => (why, detail, answer),
        };
        if why != Failure::Connect {
            backend.strike(Instant::now());
        }
        let retry = {
            let mut budget = shared.budget();
            budget.record_failure();
            let time_left = deadline.is_none_or(|d| tokio::time::Instant::now() < d);
            should_retry(
                body.replayable(),
                tried.len(),
                table.len() - tried.len(),
                &budget,
                time_left,
            )
        };
        if retry {
            shared.stats.record_retry(why);
            continue;
        }
        if let Some(answer) = answer {
            let code = grpc_status(answer.headers()).unwrap_or(stats::UNAVAILABLE);
            let (mut parts, ()) = answer.into_parts();
            parts.headers = response_headers(&parts.headers);
            let _ = respond.send_response(Response::from_parts(parts, ()), true);
            return code;
        }
        let message = format!(
            "no backend of target {} is reachable ({} tried): {detail}",
            shared.target,
            tried.len()
        );
        return trailers_only(respond, stats::UNAVAILABLE, &message);
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    shared: &Shared,
    backend: &Backend,
    method: &http::Method,
    path: &str,
    headers: &HeaderMap,
    deadline: Option<tokio::time::Instant>,
    body: &mut RequestBody,
    respond: &mut SendResponse<Bytes>,
) -> Attempt {
    let in_flight = backend.begin(); // least-request's load, until this attempt ends
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let until = deadline.unwrap_or(far);
    let connect_timeout = match deadline {
        Some(d) => shared
            .connect_timeout
            .min(d.saturating_duration_since(tokio::time::Instant::now())),
        None => shared.connect_timeout,
    };
    let lease = tokio::select! {
        lease = backend.lease(connect_timeout, &shared.tls) => match lease {
            Ok(lease) => lease,
            Err(detail) => return Attempt::Failed { why: Failure::Connect, detail, answer: None },
        },
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return Attempt::Done(stats::CANCELLED),
        _ = sleep_until(until) => return deadline_exceeded(respond),
    };
    let mut request = Request::new(());
    *request.method_mut() = method.clone();
    *request.uri_mut() = match Uri::builder()
        .scheme("http")
        .authority(backend.address.as_str())
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(e) => {
            return Attempt::Done(trailers_only(
                respond,
                stats::INTERNAL,
                &format!("bad request target: {e}"),
            ));
        }
    };
    *request.headers_mut() = headers.clone();
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(tokio::time::Instant::now());
        if let Ok(value) = HeaderValue::from_str(&deadline::format(left)) {
            request.headers_mut().insert("grpc-timeout", value);
        }
    }
    let (response, mut send) = match lease.sender().send_request(request, false) {
        Ok(pair) => pair,
        Err(e) => return failed(&e),
    };
    let mut pumped = false;
    let response = {
        let pump = body.pump(&mut send);
        tokio::pin!(pump);
        tokio::pin!(response);
        loop {
            tokio::select! {
                answer = &mut response => break answer,
                result = &mut pump, if !pumped => match result {
                    Ok(()) => pumped = true,
                    Err(PumpError::Client) => return Attempt::Done(stats::CANCELLED),
                    Err(PumpError::Backend) => pumped = true, // its answer says why
                },
                _ = poll_fn(|cx| respond.poll_reset(cx)) => return Attempt::Done(stats::CANCELLED),
                _ = sleep_until(until) => return deadline_exceeded(respond),
            }
        }
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => return failed(&e),
    };
    in_flight.responded();
    let (parts, mut recv) = response.into_parts();
    if let Some(message) = oversized_answer(&parts.headers) {
        body.commit(); // the backend answered: not a failure to retry
        return Attempt::Done(trailers_only(respond, stats::RESOURCE_EXHAUSTED, &message));
    }
    if recv.is_end_stream() {
        // Trailers-Only: the status is in the headers.
        let code = grpc_status(&parts.headers).unwrap_or(stats::UNKNOWN);
        if code == stats::UNAVAILABLE && body.replayable() {
            let detail = parts
                .headers
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .unwrap_or("UNAVAILABLE")
                .to_owned();
            return Attempt::Failed {
                why: Failure::Unavailable,
                detail,
                answer: Some(Response::from_parts(parts, ())),
            };
        }
        body.commit();
        let mut parts = parts;
        parts.headers = response_headers(&parts.headers);
        let _ = respond.send_response(Response::from_parts(parts, ()), true);
        return Attempt::Done(code);
    }
    body.commit();
    let mut parts = parts;
    parts.headers = response_headers(&parts.headers);
    let mut client = match respond.send_response(Response::from_parts(parts, ()), false) {
        Ok(client) => client,
        Err(_) => return Attempt::Done(stats::CANCELLED),
    };
    let pump = body.pump(&mut send);
    tokio::pin!(pump);
    loop {
        tokio::select! {
            data = recv.data() => match data {
                Some(Ok(chunk)) => {
                    let size = chunk.len();
                    if send_all(&mut client, chunk).await.is_err() {
                        return Attempt::Done(stats::CANCELLED);
                    }
                    let _ = recv.flow_control().release_capacity(size);
                }
                Some(Err(e)) => {
                    let code = if e.reason() == Some(Reason::CANCEL) { stats::CANCELLED } else { stats::UNAVAILABLE };
                    let message = format!("the backend's stream failed: {e}");
                    let _ = client.send_trailers(status_trailers(code, &message));
                    return Attempt::Done(code);
                }
                None => {
                    return Attempt::Done(match recv.trailers().await {
                        Ok(Some(trailers)) => match oversized_answer(&trailers) {
                            Some(message) => {
                                let _ = client.send_trailers(status_trailers(stats::RESOURCE_EXHAUSTED, &message));
                                stats::RESOURCE_EXHAUSTED
                            }
                            None => {
                                let code = grpc_status(&trailers).unwrap_or(stats::UNKNOWN);
                                let _ = client.send_trailers(response_headers(&trailers));
                                code
                            }
                        },
                        Ok(None) => {
                            let _ = client.send_data(Bytes::new(), true);
                            stats::UNKNOWN
                        }
                        Err(e) => {
                            let message = format!("the backend's stream failed: {e}");
                            let _ = client.send_trailers(status_trailers(stats::UNAVAILABLE, &message));
                            stats::UNAVAILABLE
                        }
                    });
                }
            },
            result = &mut pump, if !pumped => match result {
                Ok(()) | Err(PumpError::Backend) => pumped = true,
                Err(PumpError::Client) => return Attempt::Done(stats::CANCELLED),
            },
            _ = poll_fn(|cx| client.poll_reset(cx)) => return Attempt::Done(stats::CANCELLED),
            _ = sleep_until(until) => {
                let _ = client.send_trailers(status_trailers(stats::DEADLINE_EXCEEDED, "Deadline Exceeded"));
                return Attempt::Done(stats::DEADLINE_EXCEEDED);
            }
        }
    }
}

/// Why a backend's response headers or trailers are refused: over `MAX_METADATA_BYTES`.
fn oversized_answer(headers: &HeaderMap) -> Option<String> {
    let size = list_size(headers);
    (size > MAX_METADATA_BYTES as usize).then(|| {
        format!(
            "the backend's response metadata size exceeds the proxy's limit ({size} vs. {MAX_METADATA_BYTES} bytes)"
        )
    })
}

/// Whether the client reset the stream (or lost its connection) before the call began.
fn reset_already(respond: &mut SendResponse<Bytes>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    matches!(respond.poll_reset(&mut cx), Poll::Ready(_))
}

/// An h2 error opening or awaiting the backend stream, before the client saw anything.
fn failed(e: &h2::Error) -> Attempt {
    let why = if e.reason() == Some(Reason::REFUSED_STREAM) || e.is_go_away() {
        Failure::Refused
    } else {
        Failure::Unavailable
    };
    Attempt::Failed {
        why,
        detail: e.to_string(),
        answer: None,
    }
}

fn deadline_exceeded(respond: &mut SendResponse<Bytes>) -> Attempt {
    Attempt::Done(trailers_only(
        respond,
        stats::DEADLINE_EXCEEDED,
        "Deadline Exceeded",
    ))
}
