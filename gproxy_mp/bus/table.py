"""Pure bus state: the supervisor's endpoint table and a worker's view of one route.

The clone pattern (zguide ch. 5), without I/O. The supervisor numbers every published set with
a `seq` that only grows within its `epoch`. A worker subscribes first, then asks for a snapshot;
updates that arrive before the snapshot are held (only the newest matters: each is a full set),
and after it, anything with `seq` <= the applied one is dropped. A heartbeat names each route's
latest `seq`; a worker whose applied `seq` is behind has missed an update and asks again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gproxy_mp.bus.schema import EndpointsMessage, Heartbeat
from gproxy_mp.model import EndpointSet

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    seq: int
    target: str
    endpoints: EndpointSet


@dataclass(slots=True)
class EndpointTable:
    """The supervisor's side: the current set of every route and the sequence counter."""

    epoch: str
    seq: int = 0
    _routes: dict[str, _Entry] = field(default_factory=dict)

    def apply_set(
        self, route: str, *, target: str, endpoints: EndpointSet
    ) -> EndpointsMessage | None:
        """Record a route's new full set; the message to publish, or None if nothing changed."""
        entry = self._routes.get(route)
        if entry is not None and entry.endpoints == endpoints:
            return None
        self.seq += 1
        self._routes[route] = _Entry(self.seq, target, endpoints)
        return EndpointsMessage(epoch=self.epoch, seq=self.seq, route=route, target=target,
                                endpoints=endpoints)

    def snapshot(self, route: str) -> EndpointsMessage | None:
        """The reply to a snapshot request; None while the route has no set yet."""
        entry = self._routes.get(route)
        if entry is None:
            return None
        return EndpointsMessage(epoch=self.epoch, seq=entry.seq, route=route,
                                target=entry.target, endpoints=entry.endpoints, snapshot=True)

    def current(self, route: str) -> tuple[int, EndpointSet] | None:
        """The route's latest (seq, set), or None before its first set."""
        entry = self._routes.get(route)
        return None if entry is None else (entry.seq, entry.endpoints)

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(epoch=self.epoch, seq=self.seq,
                         routes={route: e.seq for route, e in self._routes.items()})


@dataclass(slots=True)
class RouteView:
    """A worker's side: the set it serves for its route, and what it has applied."""

    route: str
    epoch: str | None = None
    seq: int = 0
    endpoints: EndpointSet | None = None  # None until the first snapshot
    _pending: EndpointsMessage | None = None

    @property
    def has_snapshot(self) -> bool:
        return self.endpoints is not None

    def apply_message(self, message: EndpointsMessage) -> EndpointSet | None:
        """Apply a snapshot or an update; the new set if it replaced the served one, else None."""
        if message.route != self.route:
            return None
        if self.epoch is not None and message.epoch != self.epoch:
            log.warning("dropping endpoints of route %s from foreign epoch %s (ours is %s)",
                        self.route, message.epoch, self.epoch)
            return None
        if not self.has_snapshot:
            if not message.snapshot:
                if self._pending is None or message.seq > self._pending.seq:
                    self._pending = message
                return None
            self.epoch = message.epoch
            self._set(message)
            pending, self._pending = self._pending, None
            if pending is not None and pending.epoch == self.epoch and pending.seq > self.seq:
                self._set(pending)
            return self.endpoints
        if message.seq <= self.seq:
            return None
        self._set(message)
        return self.endpoints

    def _set(self, message: EndpointsMessage) -> None:
        self.seq = message.seq
        self.endpoints = message.endpoints

    def apply_heartbeat(self, heartbeat: Heartbeat) -> bool:
        """True when the heartbeat shows an update this view missed: ask for a snapshot."""
        if not self.has_snapshot or heartbeat.epoch != self.epoch:
            return False
        return heartbeat.routes.get(self.route, 0) > self.seq
