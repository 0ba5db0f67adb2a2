"""A worker's end of the bus: SUB for its route and heartbeats, DEALER for snapshots, PUSH for
status.

Concurrency: used from the worker's single asyncio loop. `receive` multiplexes SUB and DEALER
with a timeout so the caller notices a silent supervisor, and reads everything already queued
on a socket that is ready (up to `MAX_RECEIVED`): after a pause of the worker, the heartbeats
queued meanwhile are read at once, before the caller looks at its clock. Subscriptions are made
before the first snapshot request (clone pattern), so no update can fall between the two.
"""

from __future__ import annotations

import logging
from typing import cast

import zmq
import zmq.asyncio

from gproxy_mp.bus import schema
from gproxy_mp.bus.sockets import BusAddresses, configure_socket

log = logging.getLogger(__name__)

STATUS_LINGER_MS = 200
"""Milliseconds a closing worker waits for its final status report to be sent."""
MAX_RECEIVED = 1000
"""Messages one `receive` reads from one socket: a flood must not keep the worker from its
timers (the rest are read by the next call)."""


class BusClient:
    def __init__(self, addresses: BusAddresses, *, route: str, worker: str) -> None:
        self.route = route
        self.worker = worker
        self._context = zmq.asyncio.Context()
        self._sockets: list[zmq.asyncio.Socket] = []
        try:
            self._sub = self._connect(zmq.SUB, addresses.updates)
            self._sub.setsockopt_string(zmq.SUBSCRIBE, schema.route_topic(route))
            self._sub.setsockopt_string(zmq.SUBSCRIBE, schema.HEARTBEAT_TOPIC)
            self._dealer = self._connect(zmq.DEALER, addresses.snapshot)
            self._push = self._connect(zmq.PUSH, addresses.status)
        except BaseException:
            self.close()
            raise
        self._poller = zmq.asyncio.Poller()
        self._poller.register(self._sub, zmq.POLLIN)
        self._poller.register(self._dealer, zmq.POLLIN)

    def _connect(self, kind: int, address: str) -> zmq.asyncio.Socket:
        socket = self._context.socket(kind)
        self._sockets.append(socket)
        configure_socket(socket)
        socket.connect(address)
        return socket

    async def request_snapshot(self) -> None:
        request = schema.SnapshotRequest(route=self.route, worker=self.worker)
        await self._dealer.send_multipart(schema.encode(request))

    async def receive(self, timeout: float) -> list[schema.Message]:
        """Messages that arrived within `timeout` seconds (an empty list if none did).

        Malformed messages are logged and dropped; an unknown schema version raises.
        """
        messages: list[schema.Message] = []
        for socket, _ in await self._poller.poll(int(timeout * 1000)):
            assert isinstance(socket, zmq.asyncio.Socket)
            for _ in range(MAX_RECEIVED):
                # EVENTS is ZeroMQ's own "a whole message is queued": the read never waits.
                if not cast(int, socket.get(zmq.EVENTS)) & zmq.POLLIN:
                    break
                frames = await socket.recv_multipart()
                try:
                    message = schema.decode(frames)
                except schema.MalformedMessageError as e:
                    log.warning("dropping malformed bus message: %s", e)
                    continue
                if message is not None:
                    messages.append(message)
        return messages

    async def send_status(self, status: schema.WorkerStatus) -> None:
        """Best effort: a status report is dropped rather than block the worker."""
        try:
            await self._push.send_multipart(schema.encode(status), flags=zmq.NOBLOCK)
        except zmq.Again:
            log.debug("status report dropped: supervisor not reading")

    def close(self) -> None:
        for socket in self._sockets:
            # A last status report gets a moment to leave; nothing else is worth waiting for.
            socket.close(linger=STATUS_LINGER_MS if socket.type == zmq.PUSH else 0)
        self._context.term()
