"""The bus wire format: the only module that turns ZeroMQ frames into objects and back.

Every message is two frames; the topic ends in "/" so that a SUB prefix never matches a longer
name (`route/1/` does not match `route/10/`):

    +----------------------+-----------------------------------------------------------------+
    | frame 0: topic       | frame 1: JSON payload                                           |
    +----------------------+-----------------------------------------------------------------+
    | route/<id>/          | {"v":1,"kind":"endpoints","epoch":E,"seq":N,"route":"<id>",     |
    |                      |  "target":"static:///...","endpoints":[["10.0.0.1",50051],...]} |
    | route/<id>/          | same, "kind":"snapshot" (ROUTER reply to one worker)            |
    | heartbeat/           | {"v":1,"kind":"heartbeat","epoch":E,"seq":N,"routes":{"<id>":N}}|
    | snapshot/            | {"v":1,"kind":"snapshot_request","route":"<id>","worker":"0#1"} |
    | status/              | {"v":1,"kind":"status","worker":"0#1","pid":P,"state":"ready",  |
    |                      |  "seq":N,"active_calls":K,"stats":{...worker/stats.py...}}      |
    +----------------------+-----------------------------------------------------------------+

`seq` is monotonic per `epoch` (one supervisor run) across all routes; a heartbeat carries the
latest `seq` of every route so a worker can tell that it missed an update. Endpoint messages
always carry the route's full set. An unknown `kind` decodes to None (log and ignore); an
unknown `v` raises `BusProtocolError` (the two ends disagree: fail loudly); anything malformed
raises `MalformedMessageError` (log and drop). No I/O here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from gproxy_mp.errors import BusProtocolError
from gproxy_mp.model import Endpoint, EndpointSet, build_endpoint_set

log = logging.getLogger(__name__)

VERSION = 1
HEARTBEAT_TOPIC = "heartbeat/"
SNAPSHOT_TOPIC = "snapshot/"
STATUS_TOPIC = "status/"


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


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker: str
    pid: int
    state: str  # "ready" or "draining"
    seq: int
    active_calls: int
    stats: dict[str, Any] = field(default_factory=dict)  # CallStats.snapshot(), cumulative


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
                "endpoints": [[e.host, e.port] for e in message.endpoints],
            }
        case Heartbeat():
            return HEARTBEAT_TOPIC, {"kind": "heartbeat", "epoch": message.epoch,
                                     "seq": message.seq, "routes": message.routes}
        case SnapshotRequest():
            return SNAPSHOT_TOPIC, {"kind": "snapshot_request", "route": message.route,
                                    "worker": message.worker}
        case WorkerStatus():
            return STATUS_TOPIC, {"kind": "status", "worker": message.worker, "pid": message.pid,
                                  "state": message.state, "seq": message.seq,
                                  "active_calls": message.active_calls, "stats": message.stats}


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
        routes = p["routes"]
        if not isinstance(routes, dict):
            raise TypeError("routes is not an object")
        return Heartbeat(epoch=_str(p["epoch"]), seq=_int(p["seq"]),
                         routes={_str(k): _int(v) for k, v in routes.items()})
    if kind == "snapshot_request":
        return SnapshotRequest(route=_str(p["route"]), worker=_str(p["worker"]))
    if kind == "status":
        stats = p.get("stats", {})
        if not isinstance(stats, dict):
            raise TypeError("stats is not an object")
        return WorkerStatus(worker=_str(p["worker"]), pid=_int(p["pid"]), state=_str(p["state"]),
                            seq=_int(p["seq"]), active_calls=_int(p["active_calls"]),
                            stats=stats)
    log.warning("ignoring bus message of unknown kind %r on %r", kind, topic)
    return None


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _endpoint(value: object) -> Endpoint:
    if not (isinstance(value, list) and len(value) == 2):
        raise TypeError(f"expected [host, port], got {value!r}")
    host, port = _str(value[0]), _int(value[1])
    if not host or not 1 <= port <= 65535:
        raise ValueError(f"bad endpoint {value!r}")
    return Endpoint(host, port)
