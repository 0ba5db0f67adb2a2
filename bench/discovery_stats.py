"""What the discovery benchmark computes from its call record: pure functions on plain data.

A `Change` is one rewrite of the DNS answer: a backend added or removed at `at` (monotonic
seconds, taken just before the hosts file is rewritten and dnsmasq gets SIGHUP), observed until
`until`. From the calls the client load recorded:

- an **added** backend's latency is when the first call it answered returned, minus `at`;
- a **removed** backend's latency is when the last call it answered returned, minus `at` -- only
  once the load saw it answer nothing for a quiet period (`settled`); otherwise it was still
  answering when the observation window closed, and the latency is None ("not within").

Call end times are used throughout: a call has surely reached its backend by the time it
returns, and a Whoami round trip here takes about a millisecond.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.discovery_load import Call

Kind = Literal["add", "remove"]


@dataclass(frozen=True)
class Change:
    index: int
    kind: Kind
    backend: str  # the backend's name, which is also its address
    at: float
    confirmed: float  # when a direct query to dnsmasq gave the new answer
    until: float  # end of the observation
    window: float  # seconds the benchmark was ready to wait for the change to take effect
    settled: bool  # add: the backend answered; remove: it went quiet


@dataclass(frozen=True)
class Summary:
    changes: int
    median: float | None
    max: float | None
    not_within: int  # changes that had not taken effect when their window closed
    window: float


def latency(change: Change, calls: Sequence[Call]) -> float | None:
    """Seconds from the change to the first (add) or last (remove) call on its backend."""
    if not change.settled:
        return None
    ends = [c.ended for c in calls if c.backend == change.backend and c.ended <= change.until]
    if change.kind == "add":
        after = [end for end in ends if end >= change.at]
        return min(after) - change.at if after else None
    return max(ends) - change.at if ends else None


def failed_during(change: Change, calls: Iterable[Call]) -> int:
    return sum(1 for c in calls if c.backend is None and change.at <= c.ended <= change.until)


def answered_by(name: str, calls: Iterable[Call], *, start: float, end: float) -> int:
    return sum(1 for c in calls if c.backend == name and start <= c.ended <= end)


def summarize(kind: Kind, changes: Sequence[Change], calls: Sequence[Call]) -> Summary:
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


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)
