"""A pytest plugin that fails every test leaving unfinished asyncio tasks on its event loop.

Applies to every test (listed in the root ``tests/conftest.py`` ``pytest_plugins``). It checks
only where an event loop ran for the test: the loops of the pytest-asyncio runners among the
test's fixtures (an async test, or a sync test using an async fixture). A sync test that runs
its own loop (``asyncio.run``) needs no check: ``asyncio.run`` cancels what is left.

The check wraps the test body alone (``pytest_runtest_call``): tasks alive before the body
(started by fixtures, which also stop them) are not the test's. Tasks the body left pending get
up to ``SETTLE_TIMEOUT`` of the (then idle) loop to finish, so a task cancelled on the last line,
or grpc's own per-call tasks finishing after a channel closed, are not counted; what is still
pending after that is cancelled and fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator

import pytest

SETTLE_TIMEOUT = 1.0
"""Seconds the loop runs for tasks the test left finishing, before they count as leaked."""
SHOWN = 5
"""Leaked tasks named in the failure message (then a count of the rest)."""


REQUEST = pytest.StashKey[pytest.FixtureRequest]()
"""Where `_task_leak_request` leaves the test's fixture request for the hook."""


@pytest.fixture(autouse=True)
def _task_leak_request(request: pytest.FixtureRequest) -> None:
    """Hand the test's request to `pytest_runtest_call`: only it can list the fixtures that
    are active, including those requested on the fly (pytest-asyncio's runners are)."""
    request.node.stash[REQUEST] = request


def _loops(item: pytest.Item) -> list[asyncio.AbstractEventLoop]:
    """The open, idle event loops of the asyncio runners among the test's active fixtures."""
    request = item.stash.get(REQUEST, None)
    if request is None:
        return []
    values = [request.getfixturevalue(name) for name in request.fixturenames]
    loops = [value.get_loop() for value in values if isinstance(value, asyncio.Runner)]
    return [loop for loop in loops if not loop.is_closed() and not loop.is_running()]


def _pending(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks(loop) if not task.done()}


def _settle(loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[object]]) -> None:
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=SETTLE_TIMEOUT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    before = {loop: _pending(loop) for loop in _loops(item)}
    yield
    leaked: list[str] = []
    for loop, existing in before.items():
        if loop.is_closed():
            continue
        _settle(loop, _pending(loop) - existing)
        found = _pending(loop) - existing
        leaked += sorted(map(repr, found))
        for task in found:
            task.cancel()
        _settle(loop, found)
    more = f" and {len(leaked) - SHOWN} more" if len(leaked) > SHOWN else ""
    assert not leaked, f"test leaked {len(leaked)} asyncio tasks: {leaked[:SHOWN]}{more}"
