"""A worker's root tasks (bus follower, unary-method learner): one that ends early is reported
with its traceback and stops the worker; one cancelled by the worker's own stop is not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gproxy_mp.worker.main import _Roots
from gproxy_mp.worker.reflection import UnaryLearner

WAIT = 5.0


async def forever() -> None:
    await asyncio.Event().wait()


async def raises() -> None:
    raise ValueError("a bug in a root")


async def returns() -> None:
    return


@pytest.mark.parametrize(("root", "said"), [(raises, "failed"), (returns, "ended")])
async def test_a_root_that_raises_or_returns_stops_the_worker_and_says_why(
    root: object, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    failed = asyncio.Event()
    roots = _Roots(failed)
    roots.start(forever(), name="steady")
    roots.start(root(), name="faulty")  # type: ignore[operator]
    await asyncio.wait_for(failed.wait(), WAIT)
    await roots.stop()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"root task 'faulty' {said}: stopping the worker"]
    assert (errors[0].exc_info is not None) == (said == "failed")


async def test_a_root_cancelled_from_outside_stops_the_worker() -> None:
    failed = asyncio.Event()
    roots = _Roots(failed)
    roots.start(forever(), name="steady")
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "steady")
    task.cancel()
    await asyncio.wait_for(failed.wait(), WAIT)
    await roots.stop()


async def test_the_workers_own_stop_is_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    failed = asyncio.Event()
    roots = _Roots(failed)
    roots.start(forever(), name="steady")
    roots.start(UnaryLearner(lambda methods: None).run(), name="unary-method learner")
    await asyncio.sleep(0.05)
    await roots.stop()
    assert not failed.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
