"""Test-side reading of the proxy's /metrics for the churn tier.

Process and socket facts (listeners, which process holds each client connection) are
`harness.procfacts`; the refusing backend is `harness.backend` with ``--refuse-all``.

Concurrency: used from the test thread only.
"""

from __future__ import annotations

import re
import urllib.request


def scrape(admin: str) -> str:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every `name{...}` series whose labels include `labels`."""
    total = 0.0
    for match in re.finditer(rf"^{name}\{{(.*)\}} (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match[2])
    return total
