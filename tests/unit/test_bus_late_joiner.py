"""The bus over real ZeroMQ (ipc:// in a private directory): a worker that joins late still
gets the route's set, then every update, heartbeats, and its status reaches the supervisor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from gproxy_mp.bus import schema
from gproxy_mp.bus.client import BusClient
from gproxy_mp.bus.server import BusServer
from gproxy_mp.bus.sockets import BusAddresses
from gproxy_mp.bus.table import EndpointTable, RouteView
from gproxy_mp.model import Endpoint

STEP_TIMEOUT = 5.0
"""Seconds any one expected bus event may take before the test fails."""
RECEIVE_TIMEOUT = 0.05
"""Seconds of one `receive` poll while waiting for an event."""
QUIET_TIMEOUT = 0.2
"""Seconds watched to show that nothing arrives."""
HEARTBEAT_INTERVAL = 0.05

FIRST = (Endpoint("10.0.0.1", 50051),)
SECOND = (Endpoint("10.0.0.1", 50051), Endpoint("10.0.0.2", 50051))
TARGET = "static:///10.0.0.1:50051"


@dataclass
class Supervisor:
    addresses: BusAddresses
    server: BusServer
    statuses: list[schema.WorkerStatus]
    status_arrived: asyncio.Event


@dataclass
class Worker:
    """A worker's bus loop, as `run_worker` drives it: apply, and re-ask when behind."""

    client: BusClient
    view: RouteView
    received: list[schema.Message] = field(default_factory=list)

    async def pump_until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            while not done():
                for message in await self.client.receive(RECEIVE_TIMEOUT):
                    self.received.append(message)
                    if isinstance(message, schema.EndpointsMessage):
                        self.view.apply_message(message)
                    elif (isinstance(message, schema.Heartbeat)
                          and self.view.apply_heartbeat(message)):
                        await self.client.request_snapshot()

    async def listen(self, seconds: float) -> list[schema.Message]:
        """Everything that arrives within `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        arrived: list[schema.Message] = []
        while (left := deadline - loop.time()) > 0:
            arrived += await self.client.receive(min(left, RECEIVE_TIMEOUT))
        self.received += arrived
        return arrived

    def heartbeats(self) -> list[schema.Heartbeat]:
        return [m for m in self.received if isinstance(m, schema.Heartbeat)]


@pytest.fixture
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a short path: ipc:// socket paths are limited to about 100 bytes
    path = tmp_path_factory.mktemp("bus")
    path.chmod(0o700)
    return path


@pytest.fixture
async def supervisor(runtime_dir: Path) -> AsyncIterator[Supervisor]:
    addresses = BusAddresses(runtime_dir)
    statuses: list[schema.WorkerStatus] = []
    arrived = asyncio.Event()

    def on_status(status: schema.WorkerStatus) -> None:
        statuses.append(status)
        arrived.set()

    server = BusServer(addresses, EndpointTable("e1"), on_status=on_status,
                       heartbeat_interval=HEARTBEAT_INTERVAL)
    serving = asyncio.create_task(server.serve())
    try:
        yield Supervisor(addresses, server, statuses, arrived)
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        server.close()


@pytest.fixture
async def connect(supervisor: Supervisor) -> AsyncIterator[Callable[[], Worker]]:
    clients: list[BusClient] = []

    def connect() -> Worker:
        client = BusClient(supervisor.addresses, route="0", worker=f"0#{len(clients)}")
        clients.append(client)
        return Worker(client, RouteView("0"))

    try:
        yield connect
    finally:
        for client in clients:
            client.close()


async def test_a_late_joiner_gets_the_current_set_then_every_update(
    supervisor: Supervisor, connect: Callable[[], Worker]
) -> None:
    assert await supervisor.server.publish("0", target=TARGET, endpoints=FIRST)
    worker = connect()
    await worker.client.request_snapshot()
    await worker.pump_until(lambda: worker.view.has_snapshot and bool(worker.heartbeats()))
    assert (worker.view.seq, worker.view.endpoints) == (1, FIRST)

    assert await supervisor.server.publish("0", target=TARGET, endpoints=SECOND)
    await worker.pump_until(lambda: worker.view.seq == 2)
    assert worker.view.endpoints == SECOND
    update = schema.EndpointsMessage(epoch="e1", seq=2, route="0", target=TARGET,
                                     endpoints=SECOND)
    assert update in worker.received


async def test_an_unchanged_set_is_not_published_again(supervisor: Supervisor) -> None:
    assert await supervisor.server.publish("0", target=TARGET, endpoints=FIRST)
    assert not await supervisor.server.publish("0", target=TARGET, endpoints=FIRST)


async def test_heartbeats_name_the_latest_seq_of_each_route(
    supervisor: Supervisor, connect: Callable[[], Worker]
) -> None:
    await supervisor.server.publish("0", target=TARGET, endpoints=FIRST)
    await supervisor.server.publish("1", target=TARGET, endpoints=SECOND)
    worker = connect()
    await worker.pump_until(lambda: any(b.seq == 2 for b in worker.heartbeats()))
    assert worker.heartbeats()[-1] == schema.Heartbeat(epoch="e1", seq=2,
                                                       routes={"0": 1, "1": 2})


async def test_a_snapshot_asked_before_the_first_set_is_answered_when_it_is_published(
    supervisor: Supervisor, connect: Callable[[], Worker]
) -> None:
    worker = connect()
    await worker.pump_until(lambda: bool(worker.heartbeats()))
    await worker.client.request_snapshot()
    arrived = await worker.listen(QUIET_TIMEOUT)
    assert not [m for m in arrived if isinstance(m, schema.EndpointsMessage)]

    await supervisor.server.publish("0", target=TARGET, endpoints=FIRST)
    await worker.pump_until(lambda: worker.view.has_snapshot)
    assert worker.view.endpoints == FIRST
    assert any(isinstance(m, schema.EndpointsMessage) and m.snapshot for m in worker.received)


async def test_a_workers_status_reaches_the_supervisor(
    supervisor: Supervisor, connect: Callable[[], Worker]
) -> None:
    worker = connect()
    status = schema.WorkerStatus(worker="0#0", pid=4242, state=schema.WorkerState.READY, seq=1,
                                 active_calls=2)
    await worker.client.send_status(status)
    await asyncio.wait_for(supervisor.status_arrived.wait(), STEP_TIMEOUT)
    assert supervisor.statuses == [status]


async def test_a_malformed_request_is_dropped_and_the_bus_keeps_serving(
    supervisor: Supervisor, connect: Callable[[], Worker]
) -> None:
    await supervisor.server.publish("0", target=TARGET, endpoints=FIRST)
    context = zmq.asyncio.Context()
    stranger = context.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 0)
    try:
        stranger.connect(supervisor.addresses.snapshot)
        await stranger.send_multipart([b"snapshot/", b"{not json"])
        await stranger.send_multipart([b"snapshot/", b'{"v":99,"kind":"snapshot_request"}'])
    finally:
        stranger.close(linger=0)
        context.term()
    worker = connect()
    await worker.client.request_snapshot()
    await worker.pump_until(lambda: worker.view.has_snapshot)
    assert worker.view.endpoints == FIRST
