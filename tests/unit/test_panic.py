"""Panic: when no backend passes its health check, one log line per change, not per check."""

from __future__ import annotations

import pytest

from gproxy_mp.bus.schema import BackendCondition
from gproxy_mp.worker.panic import PanicWatch

NOT_SERVING = BackendCondition.NOT_SERVING
UNKNOWN_SERVICE = BackendCondition.UNKNOWN_SERVICE
FAILING = BackendCondition.FAILING

# Each step: the backends' verdicts (None: passes) → (in panic after it, words of the line
# logged, or None for no line).
Steps = list[tuple[list[BackendCondition | None], tuple[bool, str | None]]]

UNKNOWN_SERVICE_EVERYWHERE: Steps = [
    ([None, None], (False, None)),  # before the first checks
    ([UNKNOWN_SERVICE, None], (False, None)),
    ([UNKNOWN_SERVICE, UNKNOWN_SERVICE],
     (True, "no backend passes its health check (unknown_service: 2): calls go to all 2")),
    ([UNKNOWN_SERVICE, UNKNOWN_SERVICE], (True, None)),  # check after check: silent
    ([UNKNOWN_SERVICE, UNKNOWN_SERVICE], (True, None)),
]
CAUSES_CHANGE: Steps = [
    ([NOT_SERVING, NOT_SERVING], (True, "(not_serving: 2)")),
    ([NOT_SERVING, FAILING], (True, "(failing: 1, not_serving: 1)")),
    ([FAILING, NOT_SERVING], (True, None)),  # the same causes, other backends
    ([None, NOT_SERVING], (False, "panic over: 1 of 2 backends pass")),
    ([None, NOT_SERVING], (False, None)),
]
BACKENDS_LEAVE: Steps = [
    ([FAILING], (True, "(failing: 1)")),
    ([], (False, "panic over: the route has no backends")),
    ([], (False, None)),
]


@pytest.mark.parametrize("steps", [
    pytest.param(UNKNOWN_SERVICE_EVERYWHERE, id="unknown-service-everywhere"),
    pytest.param(CAUSES_CHANGE, id="causes-change"),
    pytest.param(BACKENDS_LEAVE, id="backends-leave"),
])
def test_panic_is_logged_when_it_starts_changes_cause_or_ends_never_per_check(
        steps: Steps) -> None:
    watch = PanicWatch()
    for verdicts, (panic, words) in steps:
        line = watch.step(verdicts)
        assert watch.panic is panic, (verdicts, line)
        if words is None:
            assert line is None, verdicts
        else:
            assert line is not None and words in line, (verdicts, line)
