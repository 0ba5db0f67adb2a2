"""One gRPC channel per backend, kept in step with the route's endpoint set.

A channel is created (and asked to connect) when its endpoint appears, and a small watcher task
keeps its connectivity state for the picker; with `--health-check`, a checker task per backend
keeps its health verdict too (`worker/health.py`), and the pool tells when none passes
(`worker/panic.py`). Each connection attempt is bounded by `--connect-timeout`, and the
watcher keeps why the last one failed (`worker/attempts.py`). A large update opens its first
`OPEN_BATCH` channels at once and the rest in batches between other work on the loop (a
grpc.aio channel costs ~20-40 us to create, so 5,000 at once would stall every call of the
worker for a fifth of a second); a backend picked before its turn opens on the spot. When an
endpoint disappears it leaves the pick list at once, and its channel is closed in the background
with a grace period, so calls already running on it finish. Concurrency: everything runs on the
worker's single asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio

from gproxy_mp.bus.schema import MAX_UNHEALTHY, BackendCondition
from gproxy_mp.config import DEFAULT_CONNECT_TIMEOUT
from gproxy_mp.model import Endpoint, EndpointSet, diff_endpoints
from gproxy_mp.worker.attempts import ConnectAttempts, connect_options
from gproxy_mp.worker.balancer import (
    CHECK_FAILED,
    FAILING,
    READY,
    UNKNOWN,
    Ewma,
    Strikes,
    build_picker,
    placed_rank,
)
from gproxy_mp.worker.health import (
    CHECK_METHOD,
    MAX_CHECK_TIMEOUT,
    HealthChecks,
    Verdict,
    describe_change,
    encode_request,
    judge_answer,
    judge_error,
)
from gproxy_mp.worker.panic import PanicWatch
from gproxy_mp.worker.server import MAX_METADATA_BYTES

log = logging.getLogger(__name__)

CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 0),  # the proxy retries across backends itself
    ("grpc.use_local_subchannel_pool", 1),  # each backend channel owns its connection
    ("grpc.keepalive_time_ms", 30_000),  # find a silently dead backend within ~50 s
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),  # see worker/server.py
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
)
MAX_CACHED_METHODS = 4096
"""Method names whose multi-callables a backend keeps; beyond that they are built per call."""
OPEN_BATCH = 100
"""Channels opened per turn of the event loop when an update adds many endpoints."""
_RANKS = {
    grpc.ChannelConnectivity.READY: READY,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE: FAILING,
    grpc.ChannelConnectivity.SHUTDOWN: FAILING,
}


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """How every backend channel of a worker is made."""

    credentials: grpc.ChannelCredentials | None = None  # None: plaintext
    server_name: str | None = None  # checked in the backend's certificate and sent as SNI
    health_checks: HealthChecks | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds a connection attempt (TCP, TLS, HTTP/2 SETTINGS) may take."""

    def options(self) -> Sequence[tuple[str, int | str]]:
        options = (*CHANNEL_OPTIONS, *connect_options(self.connect_timeout))
        if self.credentials is None or self.server_name is None:
            return options
        return (*options, ("grpc.ssl_target_name_override", self.server_name))


class Backend:
    def __init__(self, endpoint: Endpoint, *, settings: ChannelSettings | None = None) -> None:
        self.endpoint = endpoint
        self.state = grpc.ChannelConnectivity.IDLE
        self.rank = UNKNOWN
        self.strikes = Strikes()
        self.health: BackendCondition | None = None  # the last check's verdict (None: passes)
        self._verdict: Verdict | None = None  # the last check's, as logged
        self._settings = settings or ChannelSettings()
        self.attempts = ConnectAttempts(self._settings.connect_timeout)
        self._checker: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()  # set when the channel turns READY: check at once
        self.in_flight = 0  # attempts running on it now, in this worker
        self.latency = Ewma()  # of its response times (to headers or first message)
        self.closed = False
        self._channel: grpc.aio.Channel | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._methods: dict[str, grpc.aio.StreamStreamMultiCallable[bytes, bytes]] = {}
        self._single: dict[str, grpc.aio.UnaryStreamMultiCallable[bytes, bytes]] = {}
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"Backend({self.endpoint.address}, {self.state.name})"

    def condition(self, now: float) -> BackendCondition | None:
        """Why this worker does not count the backend as healthy now (None: it does): its
        connection's failure first (gRPC keeps a channel in TRANSIENT_FAILURE until a new
        attempt succeeds), then its health check's verdict, then passive health."""
        if self.state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                          grpc.ChannelConnectivity.SHUTDOWN):
            return self.attempts.failure
        if self.health is not None:
            return self.health
        if self.strikes.until and self.strikes.active(now):
            return BackendCondition.STRUCK
        return None

    @property
    def channel(self) -> grpc.aio.Channel:
        """The backend's channel, opened now if its batch has not come yet."""
        if self._channel is None:
            self.open()
        assert self._channel is not None
        return self._channel

    def begin(self) -> float:
        """An attempt starts on this backend; returns its start time for `responded`."""
        self.in_flight += 1
        return time.monotonic()

    def responded(self, started: float) -> None:
        """The attempt begun at `started` got its response headers (or its whole answer)."""
        now = time.monotonic()
        self.latency.observe(now - started, now)

    def end(self) -> None:
        """The attempt is over, however it ended."""
        self.in_flight -= 1

    def open(self) -> None:
        """Create the channel and start connecting (no-op when open or closed)."""
        if self._channel is None and not self.closed:
            settings = self._settings
            if settings.credentials is None:
                channel = grpc.aio.insecure_channel(self.endpoint.address,
                                                    options=settings.options())
            else:
                channel = grpc.aio.secure_channel(self.endpoint.address, settings.credentials,
                                                  options=settings.options())
            self._channel = channel
            self._watcher = asyncio.create_task(self._watch(channel),
                                                name=f"watch {self.endpoint}")
            if settings.health_checks is not None:
                self._checker = asyncio.create_task(
                    self._check_health(channel, settings.health_checks),
                    name=f"health-check {self.endpoint}")

    def renew(self, settings: ChannelSettings, grace: float | None) -> Coroutine[
            None, None, None] | None:
        """Make further calls use a new channel built with `settings` (new TLS material);
        returns the closing of the old channel, which lets its calls finish within `grace`
        (None if no channel was open: the next `open` uses `settings`)."""
        self._settings = settings
        old = (self._channel, self._watcher, self._checker)
        if self._channel is None or self.closed:
            return None
        self._channel = self._watcher = self._checker = None
        self._methods.clear()
        self._single.clear()
        self._unary.clear()
        self.state, self.rank = grpc.ChannelConnectivity.IDLE, UNKNOWN
        self.open()
        return _close(*old, grace=grace)

    def method(self, name: str) -> grpc.aio.StreamStreamMultiCallable[bytes, bytes]:
        """A raw-bytes stream-stream multi-callable for `name` on this backend."""
        multicallable = self._methods.get(name)
        if multicallable is None:
            multicallable = self.channel.stream_stream(
                name, request_serializer=None, response_deserializer=None)
            if len(self._methods) < MAX_CACHED_METHODS:
                self._methods[name] = multicallable
        return multicallable

    def unary_method(self, name: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        """A raw-bytes unary-unary multi-callable, for methods declared unary."""
        multicallable = self._unary.get(name)
        if multicallable is None:
            multicallable = self.channel.unary_unary(
                name, request_serializer=None, response_deserializer=None)
            if len(self._unary) < MAX_CACHED_METHODS:
                self._unary[name] = multicallable
        return multicallable

    def single_request_method(self, name: str) -> grpc.aio.UnaryStreamMultiCallable[bytes, bytes]:
        """A raw-bytes unary-stream multi-callable for `name`: for calls whose client sent
        exactly one message, which then go out in one batch with the half-close."""
        multicallable = self._single.get(name)
        if multicallable is None:
            multicallable = self.channel.unary_stream(
                name, request_serializer=None, response_deserializer=None)
            if len(self._single) < MAX_CACHED_METHODS:
                self._single[name] = multicallable
        return multicallable

    async def _watch(self, channel: grpc.aio.Channel) -> None:
        state = channel.get_state(try_to_connect=True)
        self.attempts.observe(state.name, time.monotonic())  # the first attempt starts now
        while True:
            if state != self.state:
                log.debug("backend %s: %s -> %s", self.endpoint, self.state.name, state.name)
                if self.attempts.observe(state.name, time.monotonic()):
                    log.debug("backend %s: connection attempt failed (%s)", self.endpoint,
                              self.attempts.failure.value)
            self.state, self.rank = state, _RANKS.get(state, UNKNOWN)
            if state == grpc.ChannelConnectivity.READY:
                self._connected.set()
            await channel.wait_for_state_change(state)
            # Asking to connect keeps an idle channel warm, so the picker finds it READY.
            state = channel.get_state(try_to_connect=True)

    async def _check_health(self, channel: grpc.aio.Channel, checks: HealthChecks) -> None:
        """Ask the backend its health every interval, and at once whenever the channel
        (re)connects; keep `health` to the verdict. Runs until cancelled."""
        check = channel.unary_unary(CHECK_METHOD, request_serializer=None,
                                         response_deserializer=None)
        request = encode_request(checks.service)
        timeout = min(checks.interval, MAX_CHECK_TIMEOUT)
        while True:
            self._connected.clear()
            self._take(await _ask_health(check, request, timeout))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(),
                                       checks.interval * random.uniform(0.9, 1.1))

    def _take(self, verdict: Verdict) -> None:
        change = describe_change(self._verdict, verdict)
        self._verdict, self.health = verdict, verdict.condition
        if change is not None:
            log.log(change[0], "backend %s: %s", self.endpoint, change[1])

    async def close(self, grace: float | None) -> None:
        self.closed = True
        await _close(self._channel, self._watcher, self._checker, grace=grace)


async def _close(channel: grpc.aio.Channel | None, *tasks: asyncio.Task[None] | None,
                 grace: float | None) -> None:
    """Stop a channel's tasks, then close it, letting its calls finish within `grace`."""
    for task in tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if channel is not None:
        await channel.close(grace)


async def _ask_health(check: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes], request: bytes,
                      timeout: float) -> Verdict:
    """The verdict of one Health/Check call."""
    try:
        answer = await check(request, timeout=timeout)
    except grpc.RpcError as error:
        return judge_error(error.code().name, error.details() or "")
    return judge_answer(answer)


async def _gather(work: list[Coroutine[None, None, None]]) -> None:
    await asyncio.gather(*work)


def _load(backend: Backend) -> tuple[int, float]:
    return backend.in_flight, backend.latency.value


class BackendPool:
    """The route's backends, the picker over them, and the channels still closing."""

    def __init__(self, *, close_grace: float, balancer: str = "round-robin",
                 settings: ChannelSettings | None = None) -> None:
        self._close_grace = close_grace
        self._settings = settings or ChannelSettings()
        self._backends: dict[tuple[str, int], Backend] = {}  # by address
        self._order: list[Backend] = []
        self._tasks: set[asyncio.Task[None]] = set()  # opening and closing channels
        self._picker = build_picker(balancer, _load)
        self._panic = PanicWatch()

    def __len__(self) -> int:
        return len(self._order)

    def pick(self, *, exclude: Sequence[Backend] = ()) -> Backend | None:
        now = time.monotonic()

        def rank(backend: Backend) -> int:
            health = backend.rank
            if backend.strikes.until and backend.strikes.active(now):
                health = FAILING
            if backend.health is not None:  # its check fails: only in panic, READY first
                health += CHECK_FAILED
            return placed_rank(health, backend.endpoint.ring)

        return self._picker.pick(self._order, rank=rank, exclude=exclude)

    def panic(self) -> bool:
        """Whether no backend passes its health check (never without `--health-check`), so
        calls go to backends that fail it; logs when that starts, ends or changes cause.
        Called with each status report."""
        if self._settings.health_checks is None:
            return False
        line = self._panic.step(backend.health for backend in self._order)
        if line is not None:
            (log.warning if self._panic.panic else log.info)("%s", line)
        return self._panic.panic

    def unhealthy(self) -> tuple[dict[str, BackendCondition], int]:
        """The backends this worker does not count as healthy now, by address (at most
        `MAX_UNHEALTHY`, in address order), and how many more there are."""
        now = time.monotonic()
        found = sorted((backend.endpoint.address, condition)
                       for backend in self._backends.values()
                       if (condition := backend.condition(now)) is not None)
        return dict(found[:MAX_UNHEALTHY]), max(0, len(found) - MAX_UNHEALTHY)

    def update(self, endpoints: EndpointSet) -> list[Backend]:
        """Make the pool match `endpoints`: new channels for new ones (the first `OPEN_BATCH`
        now, the rest in the background), graceful close for gone, a new placement (locality,
        ring) for kept ones. Returns the backends added."""
        diff = diff_endpoints((b.endpoint for b in self._backends.values()), endpoints)
        added = []
        for endpoint in diff.added:
            backend = Backend(endpoint, settings=self._settings)
            self._backends[endpoint.host, endpoint.port] = backend
            added.append(backend)
        for backend in added[:OPEN_BATCH]:
            backend.open()
        if len(added) > OPEN_BATCH:
            self._background(self._open_gradually(added[OPEN_BATCH:]), "open channels")
        removed = [self._backends.pop((e.host, e.port)) for e in diff.removed]
        for backend in removed:
            backend.closed = True  # not to be opened by a batch still to come
        if removed:
            self._background(self._close_all(removed), "close channels")
        self._order = []
        for endpoint in endpoints:
            backend = self._backends[endpoint.host, endpoint.port]
            backend.endpoint = endpoint  # its placement may have changed
            self._order.append(backend)
        return added

    def renew(self, credentials: grpc.ChannelCredentials) -> None:
        """New TLS material: every backend gets a new channel for further calls; the old
        channels finish their calls (within the close grace) and close."""
        self._settings = dataclasses.replace(self._settings, credentials=credentials)
        closing = [c for b in self._backends.values()
                   if (c := b.renew(self._settings, self._close_grace)) is not None]
        log.info("TLS: %d backend channels renewed with the new material", len(closing))
        if closing:
            self._background(_gather(closing), "close renewed channels")

    def _background(self, work: Coroutine[None, None, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _open_gradually(backends: list[Backend]) -> None:
        for start in range(0, len(backends), OPEN_BATCH):
            await asyncio.sleep(0)  # let calls run between batches
            for backend in backends[start:start + OPEN_BATCH]:
                backend.open()

    async def _close_all(self, backends: list[Backend]) -> None:
        await asyncio.gather(*(b.close(self._close_grace) for b in backends))

    async def close(self, grace: float | None) -> None:
        """Close every channel (current and closing ones), giving calls `grace` seconds."""
        backends, self._backends, self._order = list(self._backends.values()), {}, []
        await asyncio.gather(*(b.close(grace) for b in backends), *self._tasks)
