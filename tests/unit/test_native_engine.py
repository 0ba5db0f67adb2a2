"""The native engine's Python surface (`gproxy_mp._native.Engine`): start returns at once, a
runtime that ends is seen through the wake-up pipe with its reason, drain and stop end it;
backends not health-checked yet pass.

Real sockets and pipes, no backends: forwarding itself is covered by the process tier.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator

import pytest

from gproxy_mp._native import Engine

WAKE_TIMEOUT = 10.0
"""Seconds the engine may take to end its runtime and close the wake-up pipe."""


def engine() -> Engine:
    return Engine(target="static:///127.0.0.1:1", max_concurrent_streams=10,
                  connect_timeout=1.0)


@pytest.fixture
def wake() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    try:
        yield read, write
    finally:
        os.close(read)


def ended_within(read: int, timeout: float) -> bool:
    ready, _, _ = select.select([read], [], [], timeout)
    return bool(ready) and os.read(read, 1) == b""


def test_a_listener_the_runtime_cannot_use_ends_it_with_a_reason(wake: tuple[int, int]) -> None:
    read, write = wake
    started = engine()
    started.start([os.open(os.devnull, os.O_RDONLY)], write)
    assert ended_within(read, WAKE_TIMEOUT)
    outcome = started.outcome()
    assert outcome is not None and outcome[0] is False, outcome
    assert "cannot serve on the listener" in outcome[1]
    started.stop()


def test_a_drained_engine_ends_its_runtime_and_says_so(wake: tuple[int, int]) -> None:
    read, write = wake
    started = engine()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert started.set_endpoints([("127.0.0.1:1", "none", 0), ("127.0.0.1:2", "none", 0)]) == 2
        assert started.set_endpoints([("127.0.0.1:2", "none", 0)]) == 0
        assert started.endpoint_count() == 1
        started.start([os.dup(listener.fileno())], write)
        assert started.outcome() is None
        started.drain(1.0)
        assert ended_within(read, WAKE_TIMEOUT)
    assert started.outcome() == (True, "drained")
    started.stop()
    assert started.active_calls() == 0


def test_an_engine_starts_once(wake: tuple[int, int]) -> None:
    read, write = wake
    started = engine()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        started.start([os.dup(listener.fileno())], write)
        spares = os.dup(listener.fileno()), os.dup(read)
        with pytest.raises(RuntimeError, match="already started"):
            started.start([spares[0]], spares[1])  # refused before it takes them: still ours
        for fd in spares:
            os.close(fd)
        started.stop()
        assert ended_within(read, WAKE_TIMEOUT)
    assert started.outcome() == (True, "stopped")


def test_bad_arguments_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        Engine(target="t", max_concurrent_streams=1, connect_timeout=-1.0)
    with pytest.raises(ValueError, match="listener_fd"):
        engine().start([-1], -1)
    with pytest.raises(ValueError, match="health_check_interval"):
        Engine(target="t", max_concurrent_streams=1, connect_timeout=1.0, health_check="",
               health_check_interval=0.0)


@pytest.mark.parametrize("service", [None, "a.B"])
def test_backends_not_checked_yet_pass_and_nothing_changed(service: str | None) -> None:
    checked = Engine(target="t", max_concurrent_streams=1, connect_timeout=1.0,
                     health_check=service, health_check_interval=1.0)
    checked.set_endpoints([("127.0.0.1:1", "none", 0), ("127.0.0.1:2", "none", 0)])
    assert checked.health() == ([] if service is None else [None, None])
    assert checked.health_changes() == ([], 0)
    assert checked.unhealthy() == []
