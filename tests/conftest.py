"""Shared test configuration.

A tier whose real peer (a DNS server, an API server, a Go-built interop binary) is missing may
skip on a laptop with a one-line reason. CI sets GPROXY_REQUIRE_ALL_TIERS=1, which turns every
such skip into a failure, so a green CI run means every tier really ran.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL_TIERS = os.environ.get("GPROXY_REQUIRE_ALL_TIERS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL_TIERS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tier must run: {report.longrepr}"
