"""Faults injected into the supervisor's ZeroMQ bus of the real CLI, as the same local user.

The supervisor creates its private runtime dir (``gproxy-mp-*``, mode 0700) under
``$XDG_RUNTIME_DIR``; the tests point that variable at a fresh ``tmp_path`` directory in the
proxy's environment, so the dir (and the ``ipc://`` sockets in it) can be found:

============  ==========================  ===================================================
socket        supervisor                  this test
============  ==========================  ===================================================
updates       PUB bind                    SUB connect: watches heartbeats (bus loop alive)
snapshot      ROUTER bind                 DEALER connect: injects, asks a real snapshot
status        PULL bind                   PUSH connect: injects
============  ==========================  ===================================================

Injecting into the PUB side toward the workers is not possible from outside: only the
supervisor binds ``updates``, and a PUB only sends; anyone who connects to it is one more
subscriber. The workers' decoding of malformed updates is covered by the unit tier instead.

Every injected message must be logged and dropped (malformed and unknown-version ones counted
in ``gproxy_bus_messages_dropped_total``, unknown kinds only logged, as design §4 says), the
supervisor's bus loop must go on (heartbeats keep coming, a snapshot request is answered), and
calls through the proxy must all succeed with both workers unchanged.

Concurrency: the test thread owns every ZeroMQ socket it opens and closes them (linger 0)
before the context is terminated; every receive is a bounded poll.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq

from harness import client
from harness.admin import admin_get
from harness.peers import Backend, Launcher, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

ROUTE_ID = "0"
"""The bus id of the first (only) ``-p`` route; worker ids read ``0#<index>``."""
PROBE_TIMEOUT = 5.0
"""Seconds to wait for a heartbeat, a snapshot reply, or a log line (heartbeats come every 1 s)."""
EXIT_TIMEOUT = 15.0
"""Seconds the proxy may take to exit after SIGTERM with ``-d 0s`` and a 2 s drain."""
CALLS = 20


@dataclass(frozen=True)
class Fault:
    """One injected message: its frames, and what the supervisor must do with it."""

    name: str
    frames: tuple[bytes, ...]
    counted: bool  # in gproxy_bus_messages_dropped_total
    log: str  # a fragment of the stderr line that reports the drop


FAULTS = (
    Fault("one frame", (b"status/",), True, "expected 2 frames, got 1"),
    Fault("three frames", (b"status/", b"{}", b"{}"), True, "expected 2 frames, got 3"),
    Fault("non-JSON", (b"status/", b"{not json"), True, "undecodable frames"),
    Fault("non-UTF-8 topic", (b"\xff\xfe/", b"{}"), True, "undecodable frames"),
    Fault("JSON list", (b"status/", b"[1, 2, 3]"), True, "payload is not a JSON object"),
    Fault("unknown version", (b"status/", b'{"v": 99, "kind": "status"}'), True,
          "schema version 99, this build speaks 1"),
    Fault("missing version", (b"status/", b'{"kind": "status"}'), True,
          "schema version None"),
    Fault("status without fields", (b"status/", b'{"v": 1, "kind": "status"}'), True,
          "bad 'status' message"),
    Fault("unknown kind", (b"status/", b'{"v": 1, "kind": "gossip"}'), False,
          "ignoring bus message of unknown kind 'gossip'"),
)


class BusProbe:
    """This test's own ends of the proxy's bus: PUSH (status), DEALER (snapshot), SUB (updates)."""

    def __init__(self, runtime_dir: Path) -> None:
        self._context = zmq.Context()
        self._sockets: list[zmq.Socket[bytes]] = []
        try:
            self.push = self._connect(zmq.PUSH, runtime_dir / "status")
            self.dealer = self._connect(zmq.DEALER, runtime_dir / "snapshot")
            self.sub = self._connect(zmq.SUB, runtime_dir / "updates")
            self.sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat/")
        except BaseException:
            self.close()
            raise

    def _connect(self, kind: int, path: Path) -> zmq.Socket[bytes]:
        socket: zmq.Socket[bytes] = self._context.socket(kind)
        self._sockets.append(socket)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(f"ipc://{path}")
        return socket

    def socket(self, name: str) -> zmq.Socket[bytes]:
        return {"status": self.push, "snapshot": self.dealer}[name]

    def send(self, name: str, frames: tuple[bytes, ...]) -> None:
        # Bounded: a full pipe raises zmq.Again instead of blocking the test.
        self.socket(name).send_multipart(list(frames), flags=zmq.NOBLOCK)

    def next_heartbeat(self, *, timeout: float) -> dict[str, Any] | None:
        """The first heartbeat that arrives within ``timeout`` seconds after older ones are
        discarded, or None."""
        while self.sub.poll(0):
            self.sub.recv_multipart()
        if not self.sub.poll(int(timeout * 1000)):
            return None
        _topic, payload = self.sub.recv_multipart()
        heartbeat: dict[str, Any] = json.loads(payload)
        return heartbeat

    def snapshot(self, route_id: str, *, timeout: float) -> dict[str, Any] | None:
        """Ask for a route's snapshot, as a worker does; its payload, or None on no answer."""
        request = {"v": 1, "kind": "snapshot_request", "route": route_id, "worker": "probe#0"}
        self.dealer.send_multipart([b"snapshot/", json.dumps(request).encode()], flags=zmq.NOBLOCK)
        if not self.dealer.poll(int(timeout * 1000)):
            return None
        _topic, payload = self.dealer.recv_multipart()
        reply: dict[str, Any] = json.loads(payload)
        return reply

    def close(self) -> None:
        for socket in self._sockets:
            socket.close(linger=0)
        self._context.term()


@dataclass(frozen=True)
class BusSetup:
    proxy: Proxy
    address: str
    admin: str
    runtime_dir: Path
    backends: tuple[Backend, ...]
    worker_pids: tuple[int, ...]


def find_runtime_dir(base: Path, proxy: Proxy) -> Path:
    found = sorted(base.glob("gproxy-mp-*"))
    assert len(found) == 1, f"runtime dirs under {base}: {found}\n{proxy.output()}"
    return found[0]


def dropped(admin: str) -> float:
    for line in admin_get(admin, "/metrics").splitlines():
        name, _, number = line.rpartition(" ")
        if name == "gproxy_bus_messages_dropped_total":
            return float(number)
    raise AssertionError("no gproxy_bus_messages_dropped_total in /metrics")


def start_bus_setup(launcher: Launcher, runtime_base: Path) -> BusSetup:
    """Two backends, gproxy-mp with 2 workers whose bus lives under ``runtime_base``."""
    backends = (launcher.start_backend("a"), launcher.start_backend("b"))
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    # The proxy inherits this process's environment (processes.Proxy passes no env).
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_base)
    try:
        proxy = launcher.start_proxy(*proxy_args(route(port, *backends), workers=2,
                                                 admin_address=admin))
    finally:
        if previous is None:
            del os.environ["XDG_RUNTIME_DIR"]
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    proxy.wait_serving(address)
    workers = wait_until(lambda: (w if len(w := serving_workers(admin)) == 2 else []),
                         timeout=10) or serving_workers(admin)
    assert len(workers) == 2, f"{workers}\n{proxy.output()}"
    return BusSetup(proxy, address, admin, find_runtime_dir(runtime_base, proxy), backends,
                    tuple(sorted(workers)))


def serving_workers(admin: str) -> list[int]:
    """Pids of the route's workers the supervisor reports as ready."""
    view = json.loads(admin_get(admin, "/debug/endpoints"))
    return [w["pid"] for w in view["routes"][0]["workers"] if w["state"] == "ready"]


def assert_still_serving(setup: BusSetup, probe: BusProbe) -> None:
    """The supervisor, its bus loop and both original workers are alive; calls all succeed."""
    assert setup.proxy.process.poll() is None, setup.proxy.output()
    heartbeat = probe.next_heartbeat(timeout=PROBE_TIMEOUT)
    assert heartbeat is not None, f"no heartbeat: bus loop dead?\n{setup.proxy.output()}"
    assert heartbeat["routes"] == {ROUTE_ID: 1}, heartbeat
    snapshot = probe.snapshot(ROUTE_ID, timeout=PROBE_TIMEOUT)
    assert snapshot is not None, f"snapshot request unanswered\n{setup.proxy.output()}"
    assert sorted(tuple(e) for e in snapshot["endpoints"]) == sorted(
        ("127.0.0.1", b.port) for b in setup.backends), snapshot
    with client.open_channel(setup.address) as channel:
        answers = client.whoami_counts([channel], calls=CALLS)
    assert answers == {"a": CALLS // 2, "b": CALLS // 2}, answers
    view = json.loads(admin_get(setup.admin, "/debug/endpoints"))["routes"][0]
    assert sorted(view["endpoints"]) == sorted(b.address for b in setup.backends), view
    workers = [(w["pid"], w["state"], w["restarts"]) for w in view["workers"]]
    assert sorted(workers) == [(pid, "ready", 0) for pid in setup.worker_pids], (
        f"{view}\n{setup.proxy.output()}")


@pytest.fixture(scope="module")
def bus_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusSetup]:
    launcher = Launcher(tmp_path_factory.mktemp("bus-faults"))
    try:
        yield start_bus_setup(launcher, tmp_path_factory.mktemp("xdg-runtime"))
    finally:
        launcher.close()


@pytest.fixture
def probe(bus_setup: BusSetup) -> Iterator[BusProbe]:
    opened = BusProbe(bus_setup.runtime_dir)
    try:
        yield opened
    finally:
        opened.close()


def test_the_runtime_dir_is_private_and_holds_the_three_sockets(bus_setup: BusSetup) -> None:
    info = bus_setup.runtime_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700, oct(info.st_mode)
    assert info.st_uid == os.getuid()
    entries = {p.name: p.stat().st_mode for p in bus_setup.runtime_dir.iterdir()}
    assert sorted(entries) == ["snapshot", "status", "updates"], entries
    assert all(stat.S_ISSOCK(mode) for mode in entries.values()), entries


@pytest.mark.parametrize("socket_name", ["status", "snapshot"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_an_injected_bad_message_is_logged_dropped_and_survived(
    bus_setup: BusSetup, probe: BusProbe, fault: Fault, socket_name: str
) -> None:
    before = dropped(bus_setup.admin)
    logged_before = bus_setup.proxy.stderr().count(fault.log)

    probe.send(socket_name, fault.frames)

    logged = wait_until(lambda: bus_setup.proxy.stderr().count(fault.log) > logged_before,
                        timeout=PROBE_TIMEOUT)
    assert logged, f"no {fault.log!r} line\n{bus_setup.proxy.output()}"
    expected = before + (1 if fault.counted else 0)
    # The counter moves in the same loop step as the log line: no wait needed.
    assert dropped(bus_setup.admin) == expected
    assert_still_serving(bus_setup, probe)


def test_a_flood_of_bad_messages_leaves_the_proxy_serving(
    bus_setup: BusSetup, probe: BusProbe
) -> None:
    before = dropped(bus_setup.admin)
    counted = [f for f in FAULTS if f.counted]
    for _ in range(50):
        for fault in counted:
            probe.send("status", fault.frames)
            probe.send("snapshot", fault.frames)
    total = before + 2 * 50 * len(counted)
    assert wait_until(lambda: dropped(bus_setup.admin) >= total, timeout=PROBE_TIMEOUT), (
        dropped(bus_setup.admin), total)
    assert dropped(bus_setup.admin) == total
    assert_still_serving(bus_setup, probe)


MALFORMED_STATS = (
    {"calls": 5},
    {"calls": [[1, 2, "x"], "y"]},
    {"buckets": ["x"] * 16},
    {"retries": [1]},
)


@pytest.mark.parametrize("stats", MALFORMED_STATS, ids=["calls-not-a-list", "calls-entries-bad",
                                                       "buckets-not-numbers", "retries-not-a-map"])
def test_a_status_report_with_malformed_stats_leaves_the_bus_running(
    bus_setup: BusSetup, probe: BusProbe, stats: dict[str, Any]
) -> None:
    """A v1 status report whose ``stats`` has the wrong shape once ended the bus task unlogged
    (fixed in 472c8cf): heartbeats stopped, every worker stopped after SUPERVISOR_TIMEOUT and
    so did its replacements, in a loop, while the supervisor stayed up."""
    # Claims to come from worker 0#0 with a pid that is not its pid: the supervisor's call
    # counters take a report by route whatever the pid (supervisor/main.py:113).
    status = {"v": 1, "kind": "status", "worker": f"{ROUTE_ID}#0", "pid": 1,
              "state": "ready", "seq": 1, "active_calls": 0, "stats": stats}
    marker_kind = f"marker-{len(bus_setup.proxy.stderr())}"
    marker = {"v": 1, "kind": marker_kind}
    probe.send("status", (b"status/", json.dumps(status).encode()))
    # One PUSH peer's messages are read in order: once the marker is logged, the report has
    # been handled.
    probe.send("status", (b"status/", json.dumps(marker).encode()))
    assert wait_until(lambda: marker_kind in bus_setup.proxy.stderr(), timeout=PROBE_TIMEOUT), (
        bus_setup.proxy.output())
    assert_still_serving(bus_setup, probe)


def test_the_runtime_dir_is_removed_when_the_proxy_exits(
    launcher: Launcher, tmp_path: Path
) -> None:
    runtime_base = tmp_path / "xdg-runtime"
    runtime_base.mkdir(mode=0o700)
    setup = start_bus_setup(launcher, runtime_base)
    assert stat.S_IMODE(setup.runtime_dir.stat().st_mode) == 0o700
    setup.proxy.send(signal.SIGTERM)
    assert setup.proxy.wait(EXIT_TIMEOUT) == 0, setup.proxy.output()
    assert not setup.runtime_dir.exists(), setup.proxy.output()
    assert list(runtime_base.iterdir()) == []
