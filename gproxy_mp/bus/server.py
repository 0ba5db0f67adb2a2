"""The supervisor's end of the bus: PUB for endpoint sets and heartbeats, ROUTER for snapshots,
PULL for worker status.

Concurrency: one asyncio task (`serve`) owns the ROUTER and PULL sockets and the heartbeat
timer; `publish` is called from resolver tasks on the same loop. Snapshot requests for a route
that has no set yet are parked and answered as soon as its first set is published: a worker
never binds its port without a table, and nobody sleeps "to let subscribers connect".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import zmq
import zmq.asyncio

from gproxy_mp.bus import schema
from gproxy_mp.bus.sockets import BusAddresses, configure_socket
from gproxy_mp.bus.table import EndpointTable
from gproxy_mp.errors import BusProtocolError
from gproxy_mp.model import EndpointSet

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
"""Seconds between heartbeats. Workers treat 5 missed heartbeats as a dead supervisor."""


class BusServer:
    def __init__(self, addresses: BusAddresses, table: EndpointTable, *,
                 on_status: Callable[[schema.WorkerStatus], None],
                 heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        self._table = table
        self._on_status = on_status
        self._heartbeat_interval = heartbeat_interval
        self._context = zmq.asyncio.Context()
        self._sockets: list[zmq.asyncio.Socket] = []
        try:
            self._pub = self._bind(zmq.PUB, addresses.updates)
            self._router = self._bind(zmq.ROUTER, addresses.snapshot)
            self._pull = self._bind(zmq.PULL, addresses.status)
        except BaseException:
            self.close()
            raise
        self._parked: dict[str, list[bytes]] = {}  # route -> DEALER identities waiting
        self.dropped = 0  # malformed or foreign messages received and dropped

    def _bind(self, kind: int, address: str) -> zmq.asyncio.Socket:
        socket = self._context.socket(kind)
        self._sockets.append(socket)
        configure_socket(socket)
        socket.bind(address)
        return socket

    async def publish(self, route: str, *, target: str, endpoints: EndpointSet) -> bool:
        """Publish a route's full set; False if it equals the current one (nothing sent)."""
        message = self._table.apply_set(route, target=target, endpoints=endpoints)
        if message is None:
            return False
        await self._pub.send_multipart(schema.encode(message))
        for identity in self._parked.pop(route, []):
            await self._reply_snapshot(identity, route)
        return True

    def endpoints(self, route: str) -> EndpointSet | None:
        """The route's current set, None before its first."""
        current = self._table.current(route)
        return None if current is None else current[1]

    async def serve(self) -> None:
        """Answer snapshot requests, collect status, send heartbeats; runs until cancelled."""
        poller = zmq.asyncio.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._pull, zmq.POLLIN)
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            now = loop.time()
            if now >= next_beat:
                await self._pub.send_multipart(schema.encode(self._table.heartbeat()))
                next_beat = now + self._heartbeat_interval
            timeout_ms = max(0, int((next_beat - now) * 1000))
            for socket, _ in await poller.poll(timeout_ms):
                if socket is self._router:
                    await self._on_request(await self._router.recv_multipart())
                else:
                    self._on_status_frames(await self._pull.recv_multipart())

    async def _on_request(self, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[1:]
        message = self._decode(body)
        if not isinstance(message, schema.SnapshotRequest):
            return
        if self._table.snapshot(message.route) is None:
            self._parked.setdefault(message.route, []).append(identity)
            return
        await self._reply_snapshot(identity, message.route)

    async def _reply_snapshot(self, identity: bytes, route: str) -> None:
        snapshot = self._table.snapshot(route)
        assert snapshot is not None
        await self._router.send_multipart([identity, *schema.encode(snapshot)])

    def _on_status_frames(self, frames: list[bytes]) -> None:
        message = self._decode(frames)
        if not isinstance(message, schema.WorkerStatus):
            return
        try:
            self._on_status(message)
        except Exception:  # a report the supervisor cannot use must not end the bus
            log.exception("dropping a status report of worker %s", message.worker)
            self.dropped += 1

    def _decode(self, frames: list[bytes]) -> schema.Message | None:
        try:
            return schema.decode(frames)
        except schema.MalformedMessageError as e:
            log.warning("dropping malformed bus message: %s", e)
        except BusProtocolError as e:
            log.error("dropping bus message: %s", e)
        self.dropped += 1
        return None

    def close(self) -> None:
        for socket in self._sockets:
            socket.close(linger=0)
        self._context.term()
