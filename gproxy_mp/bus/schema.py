"""The bus wire format: the only module that turns ZeroMQ frames into objects and back.

Every message is two frames; the topic ends in "/" so that a SUB prefix never matches a longer
name (`route/1/` does not match `route/10/`):

    +----------------------+-----------------------------------------------------------------+
    | frame 0: topic       | frame 1: JSON payload                                           |
    +----------------------+-----------------------------------------------------------------+
    | route/<id>/          | {"v":1,"kind":"endpoints","epoch":E,"seq":N,"route":"<id>",     |
    |                      |  "target":"static:///...","endpoints":[["10.0.0.1",50051],...]} |
    |                      |  (placed endpoints: ["10.0.0.1",50051,"same_zone",0])           |
    | route/<id>/          | same, "kind":"snapshot" (ROUTER reply to one worker)            |
    | heartbeat/           | {"v":1,"kind":"heartbeat","epoch":E,"seq":N,"routes":{"<id>":N}}|
    | snapshot/            | {"v":1,"kind":"snapshot_request","route":"<id>","worker":"0#1"} |
    | status/              | {"v":1,"kind":"status","worker":"0#1","pid":P,"state":"ready",  |
    |                      |  "seq":N,"active_calls":K,"stats":{"calls":[[backend,code,N,    |
    |                      |  method,locality],...],"buckets":[N,...],"duration_sum":S,      |
    |                      |  "retries":{"unavailable":N},"tls_failures":N,                  |
    |                      |  "listener_tls_failures":N or null,                             |
    |                      |  "tls_refused":[[side,reason,N],...]},                          |
    |                      |  "unhealthy":{"h:p":"not_serving",...},"unhealthy_unlisted":N,  |
    |                      |  "panic":false,"certificates":{"listener":T,"backend":T}}       |
    +----------------------+-----------------------------------------------------------------+

`seq` is monotonic per `epoch` (one supervisor run) across all routes; a heartbeat carries the
latest `seq` of every route so a worker can tell that it missed an update. Endpoint messages
always carry the route's full set. An unknown `kind` decodes to None (log and ignore); an
unknown `v` raises `BusProtocolError` (the two ends disagree: fail loudly); anything malformed
raises `MalformedMessageError` (log and drop). No I/O here.

A worker's `state` is a `WorkerState`; its `stats` are `CallCounts`, the cumulative call counts
since it started (`worker/stats.py` counts them, `supervisor/metrics.py` sums them over
workers), with one latency bucket per bound of `LATENCY_BUCKETS` plus +Inf; `tls_refused`
counts the new TLS file versions it refused, by `TlsSide` and `TlsRefusal`;
`listener_tls_failures` the client connections whose TLS handshake failed, null from a worker
that cannot see them (the grpcio plane, or a plaintext listener). `certificates` is
not a count: the notAfter (Unix seconds) of each side's certificate chain it uses now.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from gproxy_mp.errors import BusProtocolError
from gproxy_mp.model import Endpoint, EndpointSet, Locality, build_endpoint_set

log = logging.getLogger(__name__)

VERSION = 1
HEARTBEAT_TOPIC = "heartbeat/"
SNAPSHOT_TOPIC = "snapshot/"
STATUS_TOPIC = "status/"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
"""Upper bounds, in seconds, of the call latency histogram (plus +Inf)."""


def route_topic(route: str) -> str:
    return f"route/{route}/"


class MalformedMessageError(ValueError):
    """A message that is not what the schema says: dropped by the receiver."""


@dataclass(frozen=True, slots=True)
class EndpointsMessage:
    epoch: str
    seq: int
    route: str
    target: str
    endpoints: EndpointSet
    snapshot: bool = False  # True when it answers a snapshot request


@dataclass(frozen=True, slots=True)
class Heartbeat:
    epoch: str
    seq: int
    routes: dict[str, int]


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    route: str
    worker: str


class WorkerState(enum.StrEnum):
    """A worker's lifecycle, in order; each change is reported at once."""

    STARTING = "starting"  # running, waiting for its route's first endpoint set
    READY = "ready"  # serving
    STOPPING = "stopping"  # shutdown delay: still accepting new connections
    DRAINING = "draining"  # no longer accepting; finishing the calls in flight
    STOPPED = "stopped"  # its last report, with its final counts


class BackendCondition(enum.StrEnum):
    """Why a worker does not count a backend as healthy (reported in its status)."""

    NOT_SERVING = "not_serving"  # its health check answered NOT_SERVING (or UNKNOWN)
    UNKNOWN_SERVICE = "unknown_service"  # its health service does not know the service asked
    FAILING = "failing"  # its connection is in TRANSIENT_FAILURE, or its health check failed
    CONNECT_TIMEOUT = "connect_timeout"  # its last connection attempt ran out of time
    STRUCK = "struck"  # it answered UNAVAILABLE lately: passive health ranks it last a while


class TlsSide(enum.StrEnum):
    """Whose certificate: the listener's (`--tls-cert`) or the one shown to backends
    (`--backend-cert`)."""

    LISTENER = "listener"
    BACKEND = "backend"


class TlsRefusal(enum.StrEnum):
    """Why new TLS files were refused (and the old ones kept)."""

    EXPIRED = "expired"  # a certificate of the chain is past its notAfter
    NOT_YET_VALID = "not_yet_valid"  # ... or before its notBefore
    UNUSABLE = "unusable"  # unreadable, too large, not PEM, a key of another certificate


MAX_UNHEALTHY = 64
"""Backends a status report lists as unhealthy at most (the rest are counted, not named), so a
report stays small however many endpoints a route has."""


def _no_calls() -> list[int]:
    return [0] * (len(LATENCY_BUCKETS) + 1)


@dataclass(slots=True)
class CallCounts:
    """Cumulative call counts: one worker's since it started, or a sum over workers."""

    calls: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    """(backend, code, method or "", locality) → calls"""
    buckets: list[int] = field(default_factory=_no_calls)
    """calls per latency bucket (not cumulative): one per `LATENCY_BUCKETS` bound, then +Inf"""
    duration_sum: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)  # reason → retries
    tls_failures: int = 0  # backend attempts failed by the connection's TLS handshake
    tls_refused: dict[tuple[TlsSide, TlsRefusal], int] = field(default_factory=dict)
    """(side, reason) → new TLS file versions refused"""
    listener_tls_failures: int | None = None
    """client connections whose TLS handshake failed; None: not seen (grpcio cannot report
    them; a plaintext listener has none)"""

    def add(self, other: CallCounts) -> None:
        for key, count in other.calls.items():
            self.calls[key] = self.calls.get(key, 0) + count
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.duration_sum += other.duration_sum
        for reason, count in other.retries.items():
            self.retries[reason] = self.retries.get(reason, 0) + count
        self.tls_failures += other.tls_failures
        if other.listener_tls_failures is not None:
            self.listener_tls_failures = ((self.listener_tls_failures or 0)
                                          + other.listener_tls_failures)
        for refusal, refused in other.tls_refused.items():
            self.tls_refused[refusal] = self.tls_refused.get(refusal, 0) + refused


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker: str
    pid: int
    state: WorkerState
    seq: int
    active_calls: int
    stats: CallCounts = field(default_factory=CallCounts)
    unhealthy: dict[str, BackendCondition] = field(default_factory=dict)
    """Backends (``host:port``) this worker does not count as healthy, and why; at most
    `MAX_UNHEALTHY`."""
    unhealthy_unlisted: int = 0
    """Unhealthy backends beyond `MAX_UNHEALTHY`, counted only."""
    panic: bool = False
    """No backend passes this worker's health checks, so its calls go to all of them
    (`worker/panic.py`)."""
    certificates: dict[TlsSide, float] = field(default_factory=dict)
    """Per side with a certificate: the notAfter (Unix seconds) of the chain in use."""


Message = EndpointsMessage | Heartbeat | SnapshotRequest | WorkerStatus


def encode(message: Message) -> list[bytes]:
    topic, payload = _to_payload(message)
    payload["v"] = VERSION
    return [topic.encode(), json.dumps(payload, separators=(",", ":")).encode()]


def _to_payload(message: Message) -> tuple[str, dict[str, Any]]:
    match message:
        case EndpointsMessage():
            return route_topic(message.route), {
                "kind": "snapshot" if message.snapshot else "endpoints",
                "epoch": message.epoch, "seq": message.seq, "route": message.route,
                "target": message.target,
                "endpoints": [_endpoint_entry(e) for e in message.endpoints],
            }
        case Heartbeat():
            return HEARTBEAT_TOPIC, {"kind": "heartbeat", "epoch": message.epoch,
                                     "seq": message.seq, "routes": message.routes}
        case SnapshotRequest():
            return SNAPSHOT_TOPIC, {"kind": "snapshot_request", "route": message.route,
                                    "worker": message.worker}
        case WorkerStatus():
            return STATUS_TOPIC, {"kind": "status", "worker": message.worker, "pid": message.pid,
                                  "state": message.state.value, "seq": message.seq,
                                  "active_calls": message.active_calls,
                                  "stats": _counts_payload(message.stats),
                                  "unhealthy": {address: condition.value for address, condition
                                                in message.unhealthy.items()},
                                  "unhealthy_unlisted": message.unhealthy_unlisted,
                                  "panic": message.panic,
                                  "certificates": {side.value: not_after for side, not_after
                                                   in message.certificates.items()}}


def _endpoint_entry(endpoint: Endpoint) -> list[Any]:
    if endpoint.locality is Locality.NONE and endpoint.ring == 0:
        return [endpoint.host, endpoint.port]
    return [endpoint.host, endpoint.port, endpoint.locality.value, endpoint.ring]


def _counts_payload(counts: CallCounts) -> dict[str, Any]:
    return {"calls": [[backend, code, count, method, locality]
                      for (backend, code, method, locality), count in counts.calls.items()],
            "buckets": list(counts.buckets), "duration_sum": counts.duration_sum,
            "retries": dict(counts.retries), "tls_failures": counts.tls_failures,
            "listener_tls_failures": counts.listener_tls_failures,
            "tls_refused": [[side.value, reason.value, count]
                            for (side, reason), count in counts.tls_refused.items()]}


def decode(frames: list[bytes]) -> Message | None:
    """Frames → message; None for a kind this version does not know."""
    if len(frames) != 2:
        raise MalformedMessageError(f"expected 2 frames, got {len(frames)}")
    try:
        topic = frames[0].decode()
        payload = json.loads(frames[1])
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MalformedMessageError(f"undecodable frames: {e!r:.200}") from None
    if not isinstance(payload, dict):
        raise MalformedMessageError("payload is not a JSON object")
    if payload.get("v") != VERSION:
        raise BusProtocolError(f"bus message schema version {payload.get('v')!r}, "
                               f"this build speaks {VERSION}")
    kind = payload.get("kind")
    try:
        return _from_payload(topic, kind, payload)
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedMessageError(f"bad {kind!r} message on {topic!r}: {e!r}") from None


def _from_payload(topic: str, kind: object, p: dict[str, Any]) -> Message | None:
    if kind in ("endpoints", "snapshot"):
        route = _str(p["route"])
        if topic != route_topic(route):
            raise ValueError(f"topic does not match route {route!r}")
        return EndpointsMessage(
            epoch=_str(p["epoch"]), seq=_int(p["seq"]), route=route, target=_str(p["target"]),
            endpoints=build_endpoint_set(_endpoint(e) for e in p["endpoints"]),
            snapshot=kind == "snapshot",
        )
    if kind == "heartbeat":
        routes = _dict(p["routes"])
        return Heartbeat(epoch=_str(p["epoch"]), seq=_int(p["seq"]),
                         routes={_str(k): _int(v) for k, v in routes.items()})
    if kind == "snapshot_request":
        return SnapshotRequest(route=_str(p["route"]), worker=_str(p["worker"]))
    if kind == "status":
        return WorkerStatus(worker=_str(p["worker"]), pid=_int(p["pid"]),
                            state=WorkerState(_str(p["state"])), seq=_int(p["seq"]),
                            active_calls=_int(p["active_calls"]),
                            stats=_counts(_dict(p["stats"])),
                            unhealthy=_unhealthy(_dict(p["unhealthy"])),
                            unhealthy_unlisted=_int(p["unhealthy_unlisted"]),
                            panic=_bool(p["panic"]),
                            certificates=_certificates(_dict(p["certificates"])))
    log.warning("ignoring bus message of unknown kind %r on %r", kind, topic)
    return None


def _unhealthy(p: dict[str, Any]) -> dict[str, BackendCondition]:
    if len(p) > MAX_UNHEALTHY:
        raise ValueError(f"{len(p)} unhealthy backends listed, at most {MAX_UNHEALTHY}")
    return {_str(address): BackendCondition(_str(condition)) for address, condition in p.items()}


def _certificates(p: dict[str, Any]) -> dict[TlsSide, float]:
    return {TlsSide(_str(side)): _timestamp(value) for side, value in p.items()}


def _timestamp(value: object) -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or value < 0):
        raise TypeError(f"expected a Unix timestamp, got {value!r}")
    return float(value)


def _tls_refused(entries: list[Any]) -> dict[tuple[TlsSide, TlsRefusal], int]:
    refused: dict[tuple[TlsSide, TlsRefusal], int] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3):
            raise TypeError(f"expected [side, reason, count], got {entry!r:.100}")
        refused[TlsSide(_str(entry[0])), TlsRefusal(_str(entry[1]))] = _int(entry[2])
    return refused


def _counts(p: dict[str, Any]) -> CallCounts:
    calls: dict[tuple[str, str, str, str], int] = {}
    for entry in _list(p["calls"]):
        if not (isinstance(entry, list) and len(entry) == 5):
            raise TypeError(f"expected [backend, code, count, method, locality], "
                            f"got {entry!r:.100}")
        key = (_str(entry[0]), _str(entry[1]), _str(entry[3]), Locality(_str(entry[4])).value)
        calls[key] = _int(entry[2])
    buckets = [_int(count) for count in _list(p["buckets"])]
    if len(buckets) != len(LATENCY_BUCKETS) + 1:
        raise ValueError(f"{len(buckets)} latency buckets, expected {len(LATENCY_BUCKETS) + 1}")
    duration_sum = p["duration_sum"]
    if (not isinstance(duration_sum, int | float) or isinstance(duration_sum, bool)
            or not math.isfinite(duration_sum) or duration_sum < 0):
        raise TypeError(f"expected a duration sum, got {duration_sum!r}")
    retries = {_str(reason): _int(count) for reason, count in _dict(p["retries"]).items()}
    return CallCounts(calls=calls, buckets=buckets, duration_sum=float(duration_sum),
                      retries=retries, tls_failures=_int(p["tls_failures"]),
                      tls_refused=_tls_refused(_list(p["tls_refused"])),
                      listener_tls_failures=(None if p["listener_tls_failures"] is None
                                             else _int(p["listener_tls_failures"])))


def _dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {value!r:.100}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r:.100}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _endpoint(value: object) -> Endpoint:
    if not (isinstance(value, list) and len(value) in (2, 4)):
        raise TypeError(f"expected [host, port] or [host, port, locality, ring], got {value!r}")
    host, port = _str(value[0]), _int(value[1])
    if not host or not 1 <= port <= 65535:
        raise ValueError(f"bad endpoint {value!r}")
    if len(value) == 2:
        return Endpoint(host, port)
    return Endpoint(host, port, Locality(_str(value[2])), _int(value[3]))
