"""The catch-all gRPC handler: every call is forwarded, unchanged, to one backend.

Each call, whatever its kind, is handled as stream-stream on raw bytes: no (de)serialization and
no message-size limits. Per call:

1. pick a backend (`BackendPool.pick`: round robin, READY first);
2. call the same method with the client's metadata (minus pseudo and hop-by-hop headers; more
   than `server.MAX_METADATA_BYTES` of it is refused as RESOURCE_EXHAUSTED) and
   the client's remaining deadline; a task reads the client's messages into a `RequestLog` and a
   sender task writes them to the backend;
3. forward the backend's initial metadata as soon as it is non-empty, else with the first
   message (an empty-headers error stays Trailers-Only), then every message, then trailing
   metadata, code and details unchanged (`grpc-status-details-bin` included);
4. if the attempt failed with UNAVAILABLE before anything reached the client, retry on another
   backend (`retry.should_retry`). Every call shape runs the same attempt loop: `_next_backend`
   picks each attempt's backend, `_settle` decides after each attempt.

Two cheaper shapes of the same forwarding: a request that turns out to be one message plus the
half-close goes to the backend as one unary-stream batch (no sender task), and methods declared
with `--unary-methods` or learned from the backends' server reflection (`reflection.py`) get a
unary handler and a unary backend call (`_forward_unary`).

A client cancel (or the client's deadline) cancels this handler's task; `finally` cancels the
backend call, which the backend sees as a cancellation. Concurrency: one asyncio loop per
worker; per call, this coroutine plus a reader and a sender task.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from gproxy_mp.worker.access import log_call
from gproxy_mp.worker.balancer import READY
from gproxy_mp.worker.channels import Backend, BackendPool
from gproxy_mp.worker.handshakes import HandshakeFailures
from gproxy_mp.worker.requests import RequestLog
from gproxy_mp.worker.retry import MAX_ATTEMPTS, RetryBudget, retry_reason, should_retry
from gproxy_mp.worker.server import MAX_METADATA_BYTES
from gproxy_mp.worker.stats import CallStats
from gproxy_mp.worker.status import Status, StatusRecorder

log = logging.getLogger(__name__)

Metadata = Iterable[tuple[str, str | bytes]]
UnaryBehavior = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes | None]]
Behavior = Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext[bytes, bytes]], Awaitable[None]]

# HTTP/2 and gRPC transport headers: gRPC sets its own on each hop. Everything else, including
# binary (-bin) application metadata and tracing headers, is forwarded as it came.
HOP_BY_HOP = frozenset({
    "te", "content-type", "user-agent", "host", "connection", "keep-alive", "proxy-connection",
    "transfer-encoding", "upgrade", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
    "grpc-status", "grpc-message", "grpc-internal-encoding-request", "accept-encoding",
})
SINGLE_MESSAGE_WAIT = 0.002
"""Seconds to wait, after a client's first message, for its half-close: a unary request's
half-close arrives with its message, so this costs such calls nothing."""
STREAMING_AFTER_MISSES = 3
"""Calls of a method in a row that did not turn out single-message before it is treated as
streaming and no longer waited for..."""
REPROBE_EVERY = 64
"""...except every this many calls, in case the misses came from a busy event loop."""
MAX_CACHED_METHODS = 4096
"""Distinct method names whose handlers are cached; clients choose names, so it is bounded."""


def filter_metadata(metadata: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    """Application metadata only: no pseudo-headers, no hop-by-hop transport headers."""
    if not metadata:
        return ()
    return tuple((k, v) for k, v in metadata if k[0] != ":" and k not in HOP_BY_HOP)


def metadata_size(metadata: Metadata | None) -> int:
    """Bytes of a header list as HTTP/2 counts them (RFC 9113 §6.5.2: name, value and 32 per
    entry), as gRPC core does against its metadata limits; binary values count decoded."""
    return sum(len(key) + len(value) + 32 for key, value in metadata or ())


if TYPE_CHECKING:  # grpc-stubs makes the class generic; at run time it is not subscriptable
    _GenericRpcHandler = grpc.GenericRpcHandler[bytes, bytes]
else:
    _GenericRpcHandler = grpc.GenericRpcHandler


@dataclass(slots=True)
class _Outcome:
    """What one call ended as, for the call counters."""

    backend: str = ""
    code: str = "CANCELLED"  # until a status is known, the client has gone
    locality: str = "none"


class ProxyHandler(_GenericRpcHandler):
    def __init__(self, pool: BackendPool, *, target: str, stats: CallStats | None = None,
                 budget: RetryBudget | None = None, max_attempts: int = MAX_ATTEMPTS,
                 access_log: bool = False, unary_methods: Iterable[str] = (),
                 handshakes: HandshakeFailures | None = None) -> None:
        self._pool = pool
        self._handshakes = handshakes  # with --backend-tls: which failures were TLS ones
        self._unary_methods = frozenset(unary_methods)
        self._learned_unary: frozenset[str] = frozenset()
        self._access_log = access_log
        self._target = target
        self.stats = stats or CallStats()
        self._budget = budget or RetryBudget()
        self._max_attempts = max_attempts
        self._handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}
        self._streaming: dict[str, int] = {}  # method → calls in a row not single-message
        self._loop: asyncio.AbstractEventLoop | None = None
        self.active_calls = 0

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes]:
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            if self._is_unary(method):
                handler = grpc.unary_unary_rpc_method_handler(self._unary_behavior(method))
            else:
                handler = grpc.stream_stream_rpc_method_handler(self._behavior(method))
            if len(self._handlers) < MAX_CACHED_METHODS:
                self._handlers[method] = handler
        return handler

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        """The worker's one loop, looked up once (each look-up costs a getpid() on 3.11)."""
        self._loop = asyncio.get_running_loop()
        return self._loop

    def learned_unary(self, methods: frozenset[str]) -> None:
        """Methods the backends declare unary (`reflection.UnaryLearner`): new calls to them
        get unary handlers; calls already running keep theirs."""
        self._learned_unary = methods
        self._handlers.clear()

    def _is_unary(self, method: str) -> bool:
        return method in self._unary_methods or method in self._learned_unary or (
            method.rpartition("/")[0] + "/*" in self._unary_methods)

    def _unary_behavior(self, method: str) -> UnaryBehavior:
        async def forward_unary(request: bytes,
                                context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes | None:
            outcome = _Outcome()
            with self._accounted(method, outcome):
                return await self._forward_unary(method, request, context, outcome)
        return forward_unary

    @contextlib.contextmanager
    def _accounted(self, method: str, outcome: _Outcome) -> Iterator[None]:
        """Active calls, call counters and the access log around one call."""
        self.active_calls += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self.active_calls -= 1
            seconds = time.perf_counter() - started
            self.stats.record_call(outcome.backend, outcome.code, seconds, method,
                                   outcome.locality)
            if self._access_log:
                log_call(method, outcome.backend, outcome.code, seconds)

    def _behavior(self, method: str) -> Behavior:
        async def forward(requests: AsyncIterator[bytes],
                          context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
            outcome = _Outcome()
            with self._accounted(method, outcome):
                await self._forward(method, requests, context, outcome)
        return forward

    async def _forward(self, method: str, requests: AsyncIterator[bytes],
                       context: grpc.aio.ServicerContext[bytes, bytes],
                       outcome: _Outcome) -> None:
        metadata = await self._client_metadata(context, outcome)
        loop = self._loop or self._bind_loop()
        request_log = RequestLog(loop=loop)
        reader = loop.create_task(request_log.read_from(requests))
        tried: list[Backend] = []
        try:
            single = await self._single_request(method, request_log)
            while True:
                backend = await self._next_backend(tried, context, outcome)
                started = backend.begin()
                call: grpc.aio.UnaryStreamCall[bytes, bytes] | grpc.aio.StreamStreamCall[
                    bytes, bytes]
                sender = None
                try:
                    if single is not None:  # one batch: metadata, message and half-close
                        call = backend.single_request_method(method)(
                            single, metadata=metadata, timeout=context.time_remaining())
                        recorder = StatusRecorder(call)
                    else:
                        streaming = backend.method(method)(
                            request_iterator=None, metadata=metadata,
                            timeout=context.time_remaining())
                        call, recorder = streaming, StatusRecorder(streaming)
                        sender = loop.create_task(request_log.send_to(streaming))
                    status = await self._relay(call, recorder, context, request_log,
                                               backend=backend, started=started)
                finally:
                    backend.end()
                    if sender is not None:
                        await _stop(sender)
                outcome.code = status.code.name
                if self._settle(method, backend, tried, status, context,
                                replayable=request_log.replayable):
                    return
        finally:
            await _stop(reader)

    async def _client_metadata(self, context: grpc.aio.ServicerContext[bytes, bytes],
                               outcome: _Outcome) -> tuple[tuple[str, str | bytes], ...]:
        """The client's metadata to forward; a call with more than the proxy accepts per hop
        is refused here, and counted, as RESOURCE_EXHAUSTED (gRPC core parses up to
        `MAX_PARSED_METADATA_BYTES`, see server.py)."""
        received = context.invocation_metadata()
        size = metadata_size(received)
        if size > MAX_METADATA_BYTES:
            outcome.code = "RESOURCE_EXHAUSTED"
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"received metadata size exceeds the proxy's limit ({size} vs. "
                                f"{MAX_METADATA_BYTES} bytes)")
        return filter_metadata(received)

    async def _next_backend(self, tried: list[Backend],
                            context: grpc.aio.ServicerContext[bytes, bytes],
                            outcome: _Outcome) -> Backend:
        """The backend of the next attempt, one not `tried` yet if any is left; the call is
        aborted UNAVAILABLE (naming the target) when there is none."""
        backend = self._pool.pick(exclude=tried)
        if backend is None:
            outcome.code = "UNAVAILABLE"
            await context.abort(grpc.StatusCode.UNAVAILABLE, self._no_backend_message())
            raise AssertionError("context.abort returned")  # it always raises
        tried.append(backend)
        outcome.backend = backend.endpoint.address
        outcome.locality = backend.endpoint.locality.value
        return backend

    def _settle(self, method: str, backend: Backend, tried: list[Backend], status: Status,
                context: grpc.aio.ServicerContext[bytes, bytes], *, replayable: bool) -> bool:
        """After an attempt: True when the call is over (its status is handed to the client),
        False to try another backend. `replayable`: nothing has reached the client yet."""
        if status.code != grpc.StatusCode.UNAVAILABLE:
            backend.strikes.clear()
            self._budget.record_success()
            return True
        if replayable:  # refused before answering anything: rank it down for a while
            backend.strikes.strike(time.monotonic())
            if backend.rank != READY and self._handshakes is not None:
                endpoint = backend.endpoint
                self._handshakes.failed((endpoint.host, endpoint.port), status.details)
        self._budget.record_failure()
        if not should_retry(
            unavailable=True, replayable=replayable, attempt=len(tried),
            max_attempts=self._max_attempts, budget=self._budget,
            time_left=context.time_remaining(),
        ) or len(tried) >= len(self._pool):
            if replayable:  # else the caller has already handed the status on
                if backend.rank != READY:
                    # Not the backend's answer: its connection failed. Say whose call it was.
                    status = dataclasses.replace(status, details=(
                        f"no backend of target {self._target} is reachable "
                        f"({len(tried)} tried): {status.details}"))
                _finish(status, context)
            return True
        self.stats.record_retry(retry_reason(status.details, connected=backend.rank == READY))
        log.debug("retrying %s: %s answered UNAVAILABLE", method, backend.endpoint)
        return False

    async def _forward_unary(self, method: str, request: bytes,
                             context: grpc.aio.ServicerContext[bytes, bytes],
                             outcome: _Outcome) -> bytes | None:
        """A method declared unary (`--unary-methods`): one request, one response, each hop
        in one batch. Metadata, trailers, status and retries as for every call."""
        metadata = await self._client_metadata(context, outcome)
        tried: list[Backend] = []
        while True:
            backend = await self._next_backend(tried, context, outcome)
            started = backend.begin()
            try:
                call = backend.unary_method(method)(request, metadata=metadata,
                                                    timeout=context.time_remaining())
                recorder = StatusRecorder(call)
                try:
                    try:
                        response: bytes | None = await call
                    except grpc.RpcError:
                        response = None  # the status says why
                    backend.responded(started)
                    headers = filter_metadata(await call.initial_metadata())
                except BaseException:
                    call.cancel()
                    raise
                status = await recorder.status()
            finally:
                backend.end()
            outcome.code = status.code.name
            answered = bool(headers) or status.code != grpc.StatusCode.UNAVAILABLE
            if answered:
                if headers:
                    await context.send_initial_metadata(headers)
                _finish(status, context)
            if self._settle(method, backend, tried, status, context, replayable=not answered):
                return response if status.code == grpc.StatusCode.OK else None

    async def _single_request(self, method: str, request_log: RequestLog) -> bytes | None:
        """The request if the client sent exactly one message (unary and server-streaming
        calls): it then goes to the backend in one batch, without a sender task. Methods seen
        streaming are not waited for again."""
        misses = self._streaming.get(method, 0)
        if misses >= STREAMING_AFTER_MISSES and misses % REPROBE_EVERY:
            self._streaming[method] = misses + 1  # a busy loop can miss: look again now and then
            return None
        single = await request_log.single_message(timeout=SINGLE_MESSAGE_WAIT)
        if single is None:
            if len(self._streaming) < MAX_CACHED_METHODS or method in self._streaming:
                self._streaming[method] = misses + 1
        elif misses:
            self._streaming[method] = 0
        return single

    async def _relay(self, call: grpc.aio.UnaryStreamCall[bytes, bytes]
                     | grpc.aio.StreamStreamCall[bytes, bytes],
                     recorder: StatusRecorder, context: grpc.aio.ServicerContext[bytes, bytes],
                     request_log: RequestLog, *, backend: Backend, started: float) -> Status:
        """Forward one attempt's responses. Returns its status; for UNAVAILABLE with nothing
        sent to the client yet, the status is *not* forwarded (the caller decides)."""
        try:
            headers = filter_metadata(await call.initial_metadata())
            backend.responded(started)
            if headers:
                request_log.commit()
                await context.send_initial_metadata(headers)
            while True:
                try:
                    message = await call.read()
                except grpc.RpcError:
                    break  # the status is read below
                if not isinstance(message, bytes):
                    break  # grpc.aio.EOF
                if request_log.replayable:
                    request_log.commit()
                await context.write(message)
        except BaseException:
            call.cancel()
            raise
        status = await recorder.status()
        if status.code == grpc.StatusCode.UNAVAILABLE and request_log.replayable:
            return status
        _finish(status, context)
        return status

    def _no_backend_message(self) -> str:
        if len(self._pool) == 0:
            return f"no endpoints for target {self._target}"
        return f"no backend of target {self._target} could take the call"


def _finish(status: Status, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
    """Hand the backend's status to the client, unchanged."""
    trailers = filter_metadata(status.trailers)
    if trailers:
        context.set_trailing_metadata(trailers)
    context.set_code(status.code)
    if status.details:
        context.set_details(status.details)


async def _stop(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, grpc.RpcError, asyncio.InvalidStateError):
        await task
