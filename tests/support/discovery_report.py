"""What every discovery benchmark run must show in its results file, DNS or Kubernetes."""

from __future__ import annotations

from typing import Any


def assert_changes_measured(run: dict[str, Any], *, confirmed_key: str, output: str) -> None:
    """The smoke run's two changes (an add, then a remove) each settled within its window, were
    confirmed (``confirmed_key``: dnsmasq answered, the API server stored it) within it too,
    failed no call, and gave both medians. (Not rewritten by pytest: each message carries the
    values it checks.)"""
    kinds = [c["kind"] for c in run["changes"]]
    assert kinds == ["add", "remove"], (kinds, output)
    for change in run["changes"]:
        assert change["settled"], (change, output)
        assert 0 <= change["latency_s"] <= change["window_s"], (change, output)
        assert 0 <= change[confirmed_key] < change["window_s"], (change, output)
    failed = run["failed_calls_during_changes"]
    assert failed == 0, (failed, output)
    assert run["first_call_on_added"]["median_s"] is not None, (run["first_call_on_added"], output)
    assert run["last_call_on_removed"]["median_s"] is not None, (run["last_call_on_removed"],
                                                                  output)
