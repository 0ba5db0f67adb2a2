"""`python -m bench discovery --smoke` runs end to end and writes a sane JSON report.

The benchmark itself starts dnsmasq, three backends and gproxy-mp; here it runs as a subprocess
in its own session, bounded by `SMOKE_TIMEOUT` (then SIGINT, on which it stops what it started,
then SIGKILL), and its output goes into the failure message.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from harness.dnsmasq import find_dnsmasq
from tests.support.discovery_report import assert_changes_measured
from tests.support.smoke import run_smoke

SMOKE_TIMEOUT = 90.0
"""Seconds the smoke run may take (it normally needs about 15)."""


def test_the_smoke_run_measures_every_change_through_the_proxy(tmp_path: Path) -> None:
    if find_dnsmasq() is None:
        pytest.skip("dnsmasq not installed (Debian: dnsmasq-base)")
    done = run_smoke("discovery", "--results-dir", str(tmp_path),
                     timeout=SMOKE_TIMEOUT, stop=signal.SIGINT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("discovery/*/result.json")
    report: dict[str, Any] = json.loads(path.read_text())

    proxy, reference = report["runs"]
    assert proxy["refresh_s"] == 0.5, output
    assert_changes_measured(proxy, confirmed_key="dns_confirmed_after_s", output=output)

    assert [c["kind"] for c in reference["changes"]] == ["add", "remove"], output
    assert reference["calls"] > 0, output
    assert str(path) in done.stdout, output
