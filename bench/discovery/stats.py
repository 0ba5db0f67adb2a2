"""What the discovery benchmark computes from its call record: pure functions on plain data.

A `Change` is one change of the served set (a DNS answer, an EndpointSlice): a backend added or
removed at `at` (monotonic seconds, taken just before the change is made), observed until
`until`. From the calls the client load recorded:

- an **added** backend's latency is when the first call it answered returned, minus `at`;
- a **removed** backend's latency is when the last call it answered returned, minus `at` (0 when
  none returned after `at`) -- only once the load saw it answer nothing for a quiet period
  (`settled`); otherwise it was still answering when the observation window closed, and the
  latency is None ("not within").

Call end times are used throughout: a call has surely reached its backend by the time it
returns, and a Whoami round trip here takes about a millisecond.

A `Run` is one configuration measured: its changes and every call; `report` turns it into the
JSON of the results file, `table` runs into the printed table.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.table import format_table
from harness.traffic import Outcome

Kind = Literal["add", "remove"]


@dataclass(frozen=True)
class Change:
    index: int
    kind: Kind
    backend: str  # the backend's name, which is also its address
    at: float
    confirmed: float  # when the source had the new set (dnsmasq answered it, the API stored it)
    until: float  # end of the observation
    window: float  # seconds the benchmark was ready to wait for the change to take effect
    settled: bool  # add: the backend answered; remove: it went quiet


@dataclass(frozen=True)
class Run:
    label: str
    target: str
    refresh: float | None  # seconds between re-resolutions; None: not polled (a watch, grpc's)
    origin: float  # monotonic seconds when the load started
    changes: list[Change]
    calls: list[Outcome]


@dataclass(frozen=True)
class Summary:
    changes: int
    median: float | None
    max: float | None
    not_within: int  # changes that had not taken effect when their window closed
    window: float


def latency(change: Change, calls: Sequence[Outcome]) -> float | None:
    """Seconds from the change to the first (add) or last (remove) call on its backend."""
    if not change.settled:
        return None
    after = [
        c.ended
        for c in calls
        if c.backend == change.backend and change.at <= c.ended <= change.until
    ]
    if change.kind == "add":
        return min(after) - change.at if after else None
    return max(after) - change.at if after else 0.0


def failed_during(change: Change, calls: Iterable[Outcome]) -> int:
    return sum(1 for c in calls if c.backend is None and change.at <= c.ended <= change.until)


def answered_by(name: str, calls: Iterable[Outcome], *, start: float, end: float) -> int:
    return sum(1 for c in calls if c.backend == name and start <= c.ended <= end)


def summarize(kind: Kind, changes: Sequence[Change], calls: Sequence[Outcome]) -> Summary:
    picked = [c for c in changes if c.kind == kind]
    values = [v for c in picked if (v := latency(c, calls)) is not None]
    return Summary(
        changes=len(picked),
        median=statistics.median(values) if values else None,
        max=max(values) if values else None,
        not_within=len(picked) - len(values),
        window=max((c.window for c in picked), default=0.0),
    )


def summary_json(summary: Summary) -> dict[str, object]:
    return {
        "changes": summary.changes,
        "median_s": summary.median,
        "max_s": summary.max,
        "not_within": summary.not_within,
        "window_s": summary.window,
    }


def describe(summary: Summary, *, removed: bool) -> str:
    """A table cell: `median / max` seconds, or why there is none."""
    if summary.changes == 0:
        return "-"
    if summary.median is None or summary.max is None:
        return (
            f"still answering at {summary.window:.0f} s"
            if removed
            else f"not within {summary.window:.0f} s"
        )
    cell = f"{summary.median:.2f} / {summary.max:.2f}"
    if summary.not_within:
        cell += f" ({summary.not_within} not within {summary.window:.0f} s)"
    return cell


def report(run: Run, *, confirmed_key: str) -> dict[str, object]:
    """The run as JSON; each change's `confirmed - at` goes under `confirmed_key`."""

    def change(c: Change) -> dict[str, object]:
        value = latency(c, run.calls)
        return {
            "index": c.index,
            "kind": c.kind,
            "backend": c.backend,
            "at_s": round(c.at - run.origin, 4),
            confirmed_key: round(c.confirmed - c.at, 4),
            "latency_s": None if value is None else round(value, 4),
            "settled": c.settled,
            "window_s": c.window,
            "failed_calls": failed_during(c, run.calls),
            "backend_calls_in_last_second": answered_by(
                c.backend, run.calls, start=c.until - 1.0, end=c.until
            ),
        }

    return {
        "label": run.label,
        "target": run.target,
        "refresh_s": run.refresh,
        "calls": len(run.calls),
        "failed_calls": sum(1 for c in run.calls if c.backend is None),
        "answers": dict(sorted(Counter(c.backend for c in run.calls if c.backend).items())),
        "failed_calls_during_changes": sum(failed_during(c, run.calls) for c in run.changes),
        "first_call_on_added": summary_json(summarize("add", run.changes, run.calls)),
        "last_call_on_removed": summary_json(summarize("remove", run.changes, run.calls)),
        "changes": [change(c) for c in run.changes],
    }


def table(runs: Sequence[Run]) -> str:
    rows = [
        [
            "configuration",
            "changes",
            "to first call on added, s (median / max)",
            "to last call on removed, s (median / max)",
            "failed calls",
            "calls",
        ]
    ]
    for run in runs:
        added = summarize("add", run.changes, run.calls)
        removed = summarize("remove", run.changes, run.calls)
        failed = sum(failed_during(c, run.calls) for c in run.changes)
        rows.append(
            [
                run.label,
                str(len(run.changes)),
                describe(added, removed=False),
                describe(removed, removed=True),
                str(failed),
                str(len(run.calls)),
            ]
        )
    return format_table(rows)
