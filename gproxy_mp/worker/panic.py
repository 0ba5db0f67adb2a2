"""Panic: a route none of whose backends passes its health checks. Pure; no gRPC here.

With `--health-check`, backends that fail their check rank after those that pass
(`worker/balancer.py`). When *none* passes — a service name the backends do not know
(`--health-check=nosuch.Svc`), every backend NOT_SERVING, every one unreachable — calls still go
to all of them, READY connections first, as Envoy does below its panic threshold: refusing
every call would turn a misconfigured or over-cautious health check into a full outage. It must
not be silent, though: `PanicWatch` turns the verdicts a worker holds into one log line when
the worker enters panic, one when the causes change, one when it ends, and the worker reports
the state in its status (`gproxy_route_panic`, `/debug/endpoints`).

`PanicWatch.step` runs with each status report (once a second), never per check or per call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from gproxy_mp.bus.schema import BackendCondition


def describe_causes(causes: Counter[BackendCondition]) -> str:
    """`unknown_service: 2, not_serving: 1`, most common first."""
    return ", ".join(f"{condition.value}: {count}" for condition, count
                     in sorted(causes.items(), key=lambda item: (-item[1], item[0].value)))


@dataclass(slots=True)
class PanicWatch:
    """Whether a worker's route is in panic, and what to log about it."""

    panic: bool = False
    causes: frozenset[BackendCondition] = frozenset()

    def step(self, verdicts: Iterable[BackendCondition | None]) -> str | None:
        """Take the backends' current health verdicts (None: passes); returns a line to log
        when panic starts, ends, or its causes change, else None."""
        counts: Counter[BackendCondition] = Counter()
        total = passing = 0
        for condition in verdicts:
            total += 1
            if condition is None:
                passing += 1
            else:
                counts[condition] += 1
        panic = total > 0 and passing == 0
        causes = frozenset(counts)
        was = self.panic
        changed = panic != was or (panic and causes != self.causes)
        self.panic, self.causes = panic, causes if panic else frozenset()
        if not changed:
            return None
        if panic:
            return (f"route in panic: no backend passes its health check "
                    f"({describe_causes(counts)}): calls go to all {total} backends, "
                    f"READY ones first")
        if total == 0:
            return "panic over: the route has no backends"
        return f"panic over: {passing} of {total} backends pass their health check"
