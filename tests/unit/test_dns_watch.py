"""`watch_dns`, the pure re-resolution loop: what it yields, how long it waits, what it logs;
and `ServerLookup`, which turns one A and one AAAA answer into a lookup's addresses.

Each test plays a script of lookup results (address lists, or `TemporaryDnsError`) through
`watch_dns` with a sleep that only records its delay and a fixed `rng`; when the script runs
out, the lookup raises `ScriptEnded`, which ends the otherwise eternal generator. The
`ServerLookup` tests script each family's answer through its injected query.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

import pytest

from gproxy_mp.config import DnsTarget
from gproxy_mp.model import Endpoint, EndpointSet
from gproxy_mp.supervisor.resolvers.dns import ServerLookup, TemporaryDnsError, watch_dns

TARGET = DnsTarget("backends.test", 8080)
FAIL = TemporaryDnsError("SERVFAIL from 127.0.0.1")
MIDDLE = 0.5
"""An rng value that leaves every delay unjittered."""

Step = Sequence[str] | TemporaryDnsError


class ScriptEnded(Exception):
    """The lookup script ran out."""


@dataclass(frozen=True)
class Run:
    yielded: list[EndpointSet]
    delays: list[float]


async def play(
    script: Sequence[Step],
    *,
    refresh_interval: float = 1.0,
    rng: Callable[[], float] = lambda: MIDDLE,
) -> Run:
    steps = iter(script)
    delays: list[float] = []

    async def lookup(host: str) -> Sequence[str]:
        assert host == TARGET.host
        step = next(steps, None)
        if step is None:
            raise ScriptEnded
        if isinstance(step, TemporaryDnsError):
            raise step
        return step

    async def sleep(delay: float) -> None:
        delays.append(delay)

    yielded: list[EndpointSet] = []
    with pytest.raises(ScriptEnded):
        async for endpoints in watch_dns(
            TARGET, lookup=lookup, refresh_interval=refresh_interval, sleep=sleep, rng=rng
        ):
            yielded.append(endpoints)
    return Run(yielded, delays)


def endpoints(*hosts: str) -> EndpointSet:
    return tuple(Endpoint(host, TARGET.port) for host in hosts)


A, B = "10.0.0.1", "10.0.0.2"

YIELDS = {
    "the_first_answer_is_yielded": ([[A]], [endpoints(A)]),
    "an_unchanged_answer_is_not_yielded_again": ([[A], [A], [A]], [endpoints(A)]),
    "the_same_addresses_in_another_order_are_unchanged": (
        [[A, B], [B, A]],
        [endpoints(A, B)],
    ),
    "duplicate_addresses_count_once": ([[A, A, B]], [endpoints(A, B)]),
    "a_changed_answer_is_yielded": (
        [[A], [A, B], [B]],
        [endpoints(A), endpoints(A, B), endpoints(B)],
    ),
    "nxdomain_yields_the_empty_set": ([[A], []], [endpoints(A), ()]),
    "nxdomain_at_the_start_yields_the_empty_set": ([[]], [()]),
    "the_name_coming_back_after_nxdomain_is_yielded": (
        [[A], [], [A]],
        [endpoints(A), (), endpoints(A)],
    ),
    "a_temporary_error_keeps_the_last_set": ([[A], FAIL, FAIL, [A]], [endpoints(A)]),
    "a_temporary_error_before_any_answer_yields_nothing": ([FAIL, FAIL], []),
    "an_answer_changed_during_an_outage_is_yielded_on_recovery": (
        [[A], FAIL, [B]],
        [endpoints(A), endpoints(B)],
    ),
}


@pytest.mark.parametrize(("script", "expected"), YIELDS.values(), ids=YIELDS.keys())
async def test_what_the_watch_yields(script: list[Step], expected: list[EndpointSet]) -> None:
    assert (await play(script)).yielded == expected


async def test_ipv6_addresses_become_bracketed_endpoints() -> None:
    run = await play([["::1", "127.0.0.2", "fd00::5"]])
    assert [e.address for e in run.yielded[0]] == [
        "127.0.0.2:8080",
        "[::1]:8080",
        "[fd00::5]:8080",
    ]


BACKOFF = {
    # refresh 1 s: retries double from 0.5 s up to the 10 s floor of the cap.
    "retries_back_off_to_10s_when_the_refresh_is_shorter": (
        1.0,
        [[A], *[FAIL] * 7, [A], [A]],
        [1.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 1.0, 1.0],
    ),
    # refresh 30 s: the cap is the refresh interval itself.
    "retries_back_off_to_the_refresh_interval_when_it_is_longer": (
        30.0,
        [[A], *[FAIL] * 8, [A]],
        [30.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0],
    ),
    "a_new_outage_starts_the_backoff_again": (
        1.0,
        [[A], FAIL, FAIL, FAIL, [A], FAIL, FAIL],
        [1.0, 0.5, 1.0, 2.0, 1.0, 0.5, 1.0],
    ),
    "failures_before_any_answer_back_off_too": (
        5.0,
        [FAIL, FAIL, FAIL, [A]],
        [0.5, 1.0, 2.0, 5.0],
    ),
    "nxdomain_is_an_answer_and_waits_the_refresh_interval": (
        2.0,
        [[], [], [A]],
        [2.0, 2.0, 2.0],
    ),
}


@pytest.mark.parametrize(
    ("refresh_interval", "script", "expected"), BACKOFF.values(), ids=BACKOFF.keys()
)
async def test_delays_between_lookups(
    refresh_interval: float, script: list[Step], expected: list[float]
) -> None:
    run = await play(script, refresh_interval=refresh_interval)
    assert run.delays == pytest.approx(expected)


@pytest.mark.parametrize(
    "rng",
    [lambda: 0.0, lambda: 0.999_999, random.Random(7).random],
    ids=["lowest", "highest", "seeded"],
)
async def test_jitter_keeps_every_delay_within_ten_percent(rng: Callable[[], float]) -> None:
    script: list[Step] = [[A], [A], FAIL, FAIL, FAIL, FAIL, [A], [A]]
    nominal = [1.0, 1.0, 0.5, 1.0, 2.0, 4.0, 1.0, 1.0]
    run = await play(script, rng=rng)
    assert len(run.delays) == len(nominal)
    for delay, expected in zip(run.delays, nominal, strict=True):
        assert 0.9 * expected <= delay <= 1.1 * expected, (delay, expected)


async def test_jitter_spreads_the_delays() -> None:
    run = await play([[A]] * 20, rng=random.Random(7).random)
    assert len(set(run.delays)) > 1


def dns_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "gproxy_mp.supervisor.resolvers.dns" and record.levelno >= logging.WARNING
    ]


async def test_each_outage_logs_one_warning_and_one_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gproxy_mp.supervisor.resolvers.dns")
    await play([[A], FAIL, FAIL, FAIL, [A], [A], FAIL, FAIL, [B]])
    warnings = dns_warnings(caplog)
    assert len(warnings) == 4, warnings
    failing, recovered, failing_again, recovered_again = warnings
    assert "resolution failing" in failing
    assert "SERVFAIL from 127.0.0.1" in failing
    assert "keeping the last 1" in failing
    assert "resolution recovered after 3 failed attempts" in recovered
    assert "resolution failing" in failing_again
    assert "resolution recovered after 2 failed attempts" in recovered_again
    assert all(str(TARGET) in warning for warning in warnings)


async def test_an_outage_before_any_answer_says_there_are_no_endpoints_yet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gproxy_mp.supervisor.resolvers.dns")
    await play([FAIL, FAIL])
    warnings = dns_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "no endpoints yet" in warnings[0]


async def test_answers_without_failures_log_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gproxy_mp.supervisor.resolvers.dns")
    await play([[A], [A, B], [], [B]])
    assert dns_warnings(caplog) == []


# `ServerLookup`: one A and one AAAA query per lookup, played from plain data. Each step is a
# family's answer: addresses, [] for no data, None for NXDOMAIN, or a `TemporaryDnsError`.
V4, V6 = "10.0.0.1", "fd00::1"
REFUSED = TemporaryDnsError("AAAA query: REFUSED from Do53:127.0.0.1@53")
A_SERVFAIL = TemporaryDnsError("A query: SERVFAIL from Do53:127.0.0.1@53")
SERVER = Endpoint("127.0.0.1", 53)
NAME = TARGET.host
LOOKUP_LOGGER = "gproxy_mp.supervisor.resolvers.dns"

FamilyStep = list[str] | None | TemporaryDnsError


def scripted_lookup(script: Sequence[tuple[FamilyStep, FamilyStep]]) -> ServerLookup:
    """A `ServerLookup` whose queries answer from `script`, one (A, AAAA) pair per lookup."""
    answers = {"A": [a for a, _ in script], "AAAA": [aaaa for _, aaaa in script]}

    async def query(host: str, rdtype: str) -> list[str] | None:
        assert host == NAME
        assert answers[rdtype], "the lookup script ran out"
        answer = answers[rdtype].pop(0)
        if isinstance(answer, TemporaryDnsError):
            raise answer
        return answer

    return ServerLookup(SERVER, query=query)


FAMILIES = {
    "both_families_are_used": (([V4], [V6]), [V4, V6]),
    "no_aaaa_data_is_the_a_answer": (([V4], []), [V4]),
    "nxdomain_is_the_empty_answer": ((None, None), []),
    "a_refused_aaaa_query_leaves_the_a_answer": (([V4], REFUSED), [V4]),
    "a_failed_a_query_leaves_the_aaaa_answer": ((A_SERVFAIL, [V6]), [V6]),
}


@pytest.mark.parametrize(("answers", "expected"), FAMILIES.values(), ids=FAMILIES.keys())
async def test_what_a_lookup_at_a_server_returns(
    answers: tuple[FamilyStep, FamilyStep], expected: list[str]
) -> None:
    assert await scripted_lookup([answers]).lookup(NAME) == expected


OUTAGES: dict[str, tuple[FamilyStep, FamilyStep]] = {
    # The failed family may hold every address: an empty answer beside it proves nothing.
    "a_failure_beside_no_data": ([], REFUSED),
    "a_failure_beside_nxdomain": (None, REFUSED),
    "both_families_failing": (A_SERVFAIL, REFUSED),
}


@pytest.mark.parametrize("answers", OUTAGES.values(), ids=OUTAGES.keys())
async def test_a_lookup_with_no_address_it_can_trust_is_a_temporary_error(
    answers: tuple[FamilyStep, FamilyStep],
) -> None:
    with pytest.raises(TemporaryDnsError) as raised:
        await scripted_lookup([answers]).lookup(NAME)
    for answer in answers:
        if isinstance(answer, TemporaryDnsError):
            assert str(answer) in str(raised.value)


async def test_a_failing_family_is_logged_once_per_stretch_of_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOOKUP_LOGGER)
    lookup = scripted_lookup(
        [([V4], REFUSED)] * 3 + [(A_SERVFAIL, REFUSED), ([V4], REFUSED), ([V4], [V6]),
                                 ([V4], REFUSED)]
    )
    for _ in range(7):
        with contextlib.suppress(TemporaryDnsError):
            await lookup.lookup(NAME)
    warnings = dns_warnings(caplog)
    assert len(warnings) == 3, warnings
    failing, recovered, failing_again = warnings
    assert f"dns://127.0.0.1:53/{NAME}" in failing
    assert "AAAA query: REFUSED from Do53:127.0.0.1@53; using the A answer alone" in failing
    assert "the AAAA query answers again" in recovered
    assert failing_again == failing


async def test_a_refused_aaaa_query_under_watch_dns_serves_the_a_answer() -> None:
    lookup = scripted_lookup([([V4], REFUSED), ([V4], REFUSED)])

    async def sleep(delay: float) -> None:
        pass

    updates = watch_dns(TARGET, lookup=lookup.lookup, refresh_interval=1.0, sleep=sleep)
    assert isinstance(updates, AsyncGenerator)
    try:
        assert await anext(updates) == endpoints(V4)
    finally:
        await updates.aclose()
