"""The traffic generator: its outcome log on plain data, its loads against a real backend.

The log's questions are answered from a table of outcomes; the thread, process and asyncio
loads call a real ``tests.support.backend`` (or a closed port, for failures) and must stop at
their count or time bound by themselves.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grpc import aio

from harness.aio_traffic import WrongReplyError, run_aio_load
from harness.peers import Backend
from harness.remote_traffic import RemoteLoad, call_once
from harness.traffic import Outcome, OutcomeLog, ThreadLoad
from harness.whoami import private_channels, whoami

pytestmark = pytest.mark.timeout(60)

LOG = (
    Outcome(1.0, 1.1, 0, "OK", "a"),
    Outcome(1.0, 1.2, 1, "OK", "b"),
    Outcome(1.3, 1.4, 0, "UNAVAILABLE", None, "UNAVAILABLE: gone"),
    Outcome(1.5, 1.6, 1, "OK", "b"),
    Outcome(1.55, 1.7, 0, "OK", "a"),
)
BOUND_SLACK = 5.0
"""Seconds past its time bound a load may take to notice it (its last call ends first)."""


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    started = Backend("solo", log_dir=tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def closed_address() -> Iterator[str]:
    """An address nothing listens on: a port bound, never listened on, kept bound meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def filled_log() -> OutcomeLog:
    log = OutcomeLog()
    for outcome in LOG:
        log.record(outcome)
    return log


def test_an_outcome_survives_its_json_line() -> None:
    for outcome in LOG:
        assert Outcome.from_json(outcome.to_json()) == outcome


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        (lambda log: log.counts(), {"a": 2, "b": 2}),
        (lambda log: log.counts(since=1.3), {"a": 1, "b": 1}),
        (lambda log: [o.error for o in log.failures()], ["UNAVAILABLE: gone"]),
        (lambda log: log.successes(), 4),
        (lambda log: log.backends(since=1.5), {"a", "b"}),
        (lambda log: log.answers_sent_after(1.5), 1),
        (lambda log: log.answers_returned_after(1.5), 2),
        (lambda log: log.first_answer_from("b", since=1.3), 1.6),
        (lambda log: log.last_answer_from("a"), 1.7),
        (lambda log: log.first_answer_from("c"), None),
    ],
)
def test_the_log_answers_from_the_outcomes_recorded(
    question: Callable[[OutcomeLog], object], answer: object
) -> None:
    assert question(filled_log()) == answer


def test_waits_on_the_log_are_bounded() -> None:
    log = filled_log()
    assert log.wait_answer_from("a", since=1.65, timeout=0.1)
    assert not log.wait_answer_from("a", since=1.8, timeout=0.1)
    # "a" answered at 1.7 (monotonic seconds: long ago) but no call succeeded since.
    assert not log.wait_quiet("a", quiet=0.0, others=1, timeout=0.1)
    assert log.wait_quiet("b", quiet=0.0, others=1, timeout=0.1)


def test_a_thread_load_makes_its_share_of_calls_on_connections_of_its_own(
    backend: Backend,
) -> None:
    with ThreadLoad(
        private_channels(backend.address), whoami, threads=2, channels_per_thread=2, max_calls=40
    ) as load:
        assert load.wait_done(timeout=30), load.summary()
    outcomes = load.outcomes()
    assert len(outcomes) == 40, load.summary()
    assert load.counts() == {"solo": 40}, load.summary()
    assert {o.connection for o in outcomes} == {0, 1, 2, 3}
    assert all(0 <= o.latency < 5 for o in outcomes)


def test_a_thread_load_keeps_its_rate_and_its_time_bound(backend: Backend) -> None:
    started = time.monotonic()
    with ThreadLoad(
        private_channels(backend.address), whoami, threads=1, interval=0.1, max_seconds=1.0
    ) as load:
        assert load.wait_done(timeout=1.0 + BOUND_SLACK), load.summary()
    assert time.monotonic() - started < 1.0 + BOUND_SLACK
    assert 5 <= len(load.outcomes()) <= 11, load.summary()


def test_a_thread_load_pauses_after_each_failed_call(closed_address: str) -> None:
    with ThreadLoad(
        private_channels(closed_address), whoami, threads=1, failure_pause=0.1, max_seconds=1.0
    ) as load:
        assert load.wait_done(timeout=1.0 + BOUND_SLACK), load.summary()
    failures = load.failures()
    assert failures and len(failures) == len(load.outcomes()) <= 11, load.summary()
    assert {o.code for o in failures} == {"UNAVAILABLE"}, load.summary()


def test_a_load_in_a_child_process_reports_every_call(backend: Backend, tmp_path: Path) -> None:
    assert call_once(backend.address, command_prefix=()).backend == "solo"
    with RemoteLoad(
        backend.address, command_prefix=(), log_path=tmp_path / "load.log", interval=0.01
    ) as load:
        assert load.wait_answer_from("solo", since=0.0, timeout=30), load.summary()
        load.check_alive()
    assert load.process.returncode == 0, load.log_path.read_text()
    assert load.failures() == [], load.summary()
    assert {o.connection for o in load.outcomes()} <= {0, 1}


def test_an_aio_load_makes_exactly_its_calls_and_records_wrong_replies(
    backend: Backend,
) -> None:
    async def expect_other(channel: aio.Channel) -> str:
        call = channel.unary_unary("/test.Echo/Whoami", None, None)
        name = (await call(b"", timeout=5.0)).decode()
        if name != "other":
            raise WrongReplyError(f"{name} answered")
        return name

    run = asyncio.run(
        run_aio_load(
            backend.address,
            expect_other,
            channels=2,
            concurrency=4,
            max_calls=30,
            max_seconds=30,
            wait_ready=True,
        )
    )
    assert run.calls == run.failed == 30
    assert run.errors() == {"solo answered": 30}
    assert run.codes() == {"WRONG_REPLY": 30}
    assert {o.connection for o in run.outcomes} == {0, 1}
