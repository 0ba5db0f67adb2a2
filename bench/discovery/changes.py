"""The change loop shared by the discovery benchmarks (DNS and Kubernetes).

Three backends, two of them served at first. Each change, after a random pause, either adds the
missing backend or removes the oldest one, so the served set alternates between two and three
and every backend is added and removed in turn. `at` is taken just before the change is made
(`serve`: rewrite the DNS answer, or replace the EndpointSlice) and `confirmed` when `serve`
returned (dnsmasq answered the new set; the API server stored the slice). The loop then waits on
the load, at most `window` seconds, until an added backend answers a call, or a removed one
(which stays up) has answered nothing for `QUIET` seconds while others answered `QUIET_OTHERS`
calls. The latencies are computed afterwards from the calls (`bench.discovery.stats`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.discovery.stats import Change, Kind
from harness.traffic import OutcomeLog

QUIET = 1.0
"""Seconds a removed backend must answer nothing, while others answer, for its removal to count
as done: hundreds of calls would have reached it in that time were it still picked."""
QUIET_OTHERS = 100
"""Calls answered by other backends during the quiet period: the load was really flowing."""
START_TIMEOUT = 20.0
"""Seconds the initial backends may take to answer their first calls."""


def apply_change(hosts: Sequence[str], active: list[str]) -> tuple[Kind, str, list[str]]:
    """Add the first of `hosts` missing from `active`, or remove the oldest when none is."""
    missing = [host for host in hosts if host not in active]
    if missing:
        return "add", missing[0], [*active, missing[0]]
    return "remove", active[0], active[1:]


@dataclass(frozen=True)
class ChangePlan:
    """What a run of changes does: `count` changes over `hosts` (the first two served at the
    start), each after a pause of up to `max_pause` s and watched for up to `window` s."""

    hosts: Sequence[str]
    count: int
    window: float
    max_pause: float
    seed: int

    def budget(self) -> float:
        """Seconds a load must be ready to run for the changes (and the start)."""
        return START_TIMEOUT + self.count * (self.max_pause + self.window + 2 * QUIET) + 10.0


def run_changes(load: OutcomeLog, serve: Callable[[list[str]], None], plan: ChangePlan
                ) -> list[Change]:
    """`plan.count` changes of the served set, starting from `plan.hosts[:2]` (already
    served)."""
    hosts, window = plan.hosts, plan.window
    rng = random.Random(plan.seed)
    active = list(hosts[:2])
    for host in active:
        if not load.wait_answer_from(host, since=0.0, timeout=START_TIMEOUT):
            raise RuntimeError(f"{host} answered no call within {START_TIMEOUT}s")
    changes: list[Change] = []
    for index in range(plan.count):
        time.sleep(rng.uniform(0.0, plan.max_pause))
        kind, backend, active = apply_change(hosts, active)
        at = time.monotonic()
        serve(active)
        confirmed = time.monotonic()
        if kind == "add":
            settled = load.wait_answer_from(backend, since=at, timeout=window)
        else:
            settled = load.wait_quiet(
                backend, quiet=QUIET, others=QUIET_OTHERS, timeout=window + QUIET
            )
        changes.append(
            Change(index, kind, backend, at, confirmed, time.monotonic(), window, settled)
        )
    return changes

