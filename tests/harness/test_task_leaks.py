"""The task-leak plugin (`harness.task_leaks`), run by pytest on a small test file: a task left
pending fails its test, async or sync (through an async fixture); a task cancelled on the last
line, or finishing within the settle time, does not; a sync test without a loop is not
checked."""

from __future__ import annotations

import pytest

from harness.processes import REPO

pytestmark = pytest.mark.timeout(120)

PROBES = '''
import asyncio

import pytest


async def test_leaves_a_task() -> None:
    asyncio.get_running_loop().create_task(asyncio.sleep(100))


async def test_cancels_its_task_on_the_last_line() -> None:
    asyncio.get_running_loop().create_task(asyncio.sleep(100)).cancel()


async def test_leaves_a_task_that_finishes_soon() -> None:
    asyncio.get_running_loop().create_task(asyncio.sleep(0.05))


@pytest.fixture
async def loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_sync_leaves_a_task_on_an_async_fixtures_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.create_task(asyncio.sleep(100))


def test_sync_runs_its_own_loop() -> None:
    asyncio.run(asyncio.sleep(0))
'''


def test_pending_tasks_fail_the_test_that_left_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # harness is imported from the checkout
    pytester.makeconftest('pytest_plugins = ["harness.task_leaks"]\n')
    pytester.makeini("[pytest]\nasyncio_mode = auto\n"
                     "asyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_probes=PROBES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["E   *AssertionError: test leaked 1 asyncio tasks: *sleep()*"])
    summary = result.stdout.str()
    for name in ("test_leaves_a_task", "test_sync_leaves_a_task_on_an_async_fixtures_loop"):
        assert f"FAILED test_probes.py::{name} - " in summary, summary
