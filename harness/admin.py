"""Reading gproxy-mp's admin port from tests (plain HTTP on loopback)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

HTTP_TIMEOUT = 5.0


def admin_get(admin: str, path: str) -> str:
    """The body of ``GET http://ADMIN/PATH``."""
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=HTTP_TIMEOUT) as response:
        return str(response.read().decode())


def route_view(admin: str, index: int = 0) -> dict[str, Any]:
    """One route's entry of ``/debug/endpoints``."""
    view: dict[str, Any] = json.loads(admin_get(admin, "/debug/endpoints"))["routes"][index]
    return view


def worker_calls(admin: str, index: int = 0) -> dict[str, int]:
    """Calls each running worker of a route has finished, as of its last 1 s report."""
    return {w["worker"]: w["calls"] for w in route_view(admin, index)["workers"]
            if w["pid"] is not None}


REPORT_PERIOD = 1.2
"""Seconds between two looks at per-worker counts: a little more than the workers' reports."""


def quiet_worker_calls(admin: str, *, workers: int, at_least: int = 0,
                       timeout: float = 15.0) -> dict[str, int]:
    """Per-worker calls once ``workers`` workers run, the reports account for at least
    ``at_least`` calls (those the caller knows finished) and two looks a report apart agree,
    i.e. every call made so far is accounted for. On a busy machine a report can come late,
    so two equal looks alone may miss a finished call; ``at_least`` closes that gap."""
    deadline = time.monotonic() + timeout
    last: dict[str, int] = {}
    while True:
        found = worker_calls(admin)
        settled = (len(found) == workers and found == last
                   and sum(found.values()) >= at_least)
        if settled or time.monotonic() >= deadline:
            return found
        last = found
        time.sleep(REPORT_PERIOD)


def metric_value(admin: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` on ``/metrics`` whose labels include ``labels``;
    None when there is none."""
    found = [sample.value
             for family in text_string_to_metric_families(admin_get(admin, "/metrics"))
             for sample in family.samples
             if sample.name == name and labels.items() <= sample.labels.items()]
    return sum(found) if found else None
