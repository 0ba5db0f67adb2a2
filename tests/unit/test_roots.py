"""Supervisor roots: one that raises or returns is reported, then restarted or made fatal."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gproxy_mp.supervisor.policy import RestartBackoff, jittered
from gproxy_mp.supervisor.roots import run_restarting, watch_fatal

WAIT = 5.0
"""Seconds any step of these tests may take (each needs milliseconds)."""


class Flaky:
    """A root that fails in the ways listed, one per run, then runs until cancelled."""

    def __init__(self, *faults: str) -> None:
        self.faults = list(faults)
        self.runs = 0
        self.steady = asyncio.Event()

    async def __call__(self) -> None:
        self.runs += 1
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "raise":
                raise ValueError("Expecting value: line 1 column 1 (char 0)")
            return  # "return": an eternal root that ended
        self.steady.set()
        await asyncio.Event().wait()


async def test_a_root_that_raises_or_returns_is_reported_and_run_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = Flaky("raise", "return", "raise")
    errors: list[str] = []
    task = asyncio.create_task(run_restarting(
        "resolver for dns:///x:1", root, on_error=errors.append,
        backoff=RestartBackoff(), rng=lambda: 0.5))
    await asyncio.wait_for(root.steady.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert root.runs == 4
    assert errors == [
        "resolver for dns:///x:1 failed: ValueError: Expecting value: line 1 column 1 (char 0)",
        "resolver for dns:///x:1 ended, which it never should",
        "resolver for dns:///x:1 failed: ValueError: Expecting value: line 1 column 1 (char 0)",
    ]
    tracebacks = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(tracebacks) == 2  # each raise is logged with its traceback


def test_a_restart_delay_is_jittered_by_a_fifth_either_way() -> None:
    assert jittered(1.0, rng=lambda: 0.0) == pytest.approx(0.8)
    assert jittered(1.0, rng=lambda: 0.5) == pytest.approx(1.0)
    assert jittered(1.0, rng=lambda: 1.0) == pytest.approx(1.2)


async def root_returns() -> None:
    return None


async def root_raises() -> None:
    raise RuntimeError("socket closed")


async def test_a_fatal_root_that_raises_stops_with_its_name_and_reason() -> None:
    reasons: list[str] = []
    task = asyncio.create_task(root_raises(), name="bus server")
    watch_fatal(task, on_fatal=reasons.append)
    await asyncio.wait([task], timeout=WAIT)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert reasons == ["bus server failed: RuntimeError: socket closed"]


async def test_a_fatal_root_that_returns_stops_unless_its_end_was_asked_for() -> None:
    reasons: list[str] = []
    for name, ok in (("worker watchdog", False), ("keeper of worker 0#0", True)):
        task = asyncio.create_task(root_returns(), name=name)
        watch_fatal(task, on_fatal=reasons.append, ending_ok=lambda ok=ok: ok)
        await asyncio.wait([task], timeout=WAIT)
        await asyncio.sleep(0)
    assert reasons == ["worker watchdog ended, which it never should"]


async def test_a_cancelled_fatal_root_is_not_reported() -> None:
    reasons: list[str] = []
    task = asyncio.create_task(asyncio.Event().wait(), name="bus server")
    watch_fatal(task, on_fatal=reasons.append)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task], timeout=WAIT)
    await asyncio.sleep(0)
    assert reasons == []
