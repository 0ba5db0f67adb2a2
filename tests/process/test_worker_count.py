"""`--workers` against the CPUs this process may use: more than `MAX_WORKERS_PER_CPU` times
them is one line and exit 2 (from the flag or `GPROXY_WORKERS`), more than them a warning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gproxy_mp.config import MAX_WORKERS_PER_CPU, read_usable_cpus
from harness.processes import free_port

pytestmark = pytest.mark.timeout(120)

USAGE = 2


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gproxy_mp", *args], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, **(env or {})})


def route() -> str:
    return f"127.0.0.1:{free_port()}-static:///127.0.0.1:{free_port()}"


@pytest.mark.parametrize("source", ["flag", "environment"])
def test_999_workers_are_refused_in_one_line_saying_how_many_cpus_it_may_use(source: str) -> None:
    cpus = read_usable_cpus()
    too_many = str(MAX_WORKERS_PER_CPU * cpus + 1)
    if source == "flag":
        result = run_cli("-p", route(), "--workers", too_many)
    else:
        result = run_cli("-p", route(), env={"GPROXY_WORKERS": too_many})
    report = result.stdout + result.stderr
    assert result.returncode == USAGE, report
    lines = result.stderr.strip().splitlines()
    named = "GPROXY_WORKERS" if source == "environment" else "--workers"
    assert len(lines) == 1 and lines[0].startswith(f"error: {named} "), report
    assert f"'{too_many}'" in lines[0], report
    assert f"may use {cpus} CPU" in lines[0], report
    assert "Traceback" not in report


def test_more_workers_than_cpus_start_with_one_warning() -> None:
    cpus = read_usable_cpus()
    result = run_cli("--check", "-p", route(), "--workers", str(cpus + 1), "--admin-address", "off")
    report = result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, report
    assert f"{cpus + 1} workers per route" in warnings[0], report
    assert f"{cpus} CPU" in warnings[0], report
