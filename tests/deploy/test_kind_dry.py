"""The kind suite checked without Docker: `integration/kind/run.sh --dry-run`, as a user runs it.

The kind suite itself needs a Docker engine (.github/workflows/kind.yml runs it on GitHub's
runners); this machine's CI has none, so here the dry mode shows that the suite's scripts pass
shellcheck, its kind config and manifests parse, the workflow that runs it is well formed, and
its tests are collected. Each check is one line of the dry mode's output and one test here.
The dry mode is also shown broken inputs, so a check that passes everything fails here.
Without shellcheck, only that check skips, with one line (CI turns the skip into a failure).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
RUN_SH = REPO / "integration" / "kind" / "run.sh"
DRY_RUN_TIMEOUT = 100.0
"""Seconds the whole dry mode may take (two pytest collections dominate)."""
CHECKS = ("shellcheck", "kind-config", "manifests", "workflow", "collect")
LINE = re.compile(r"^(ok|skip|FAIL) ([a-z-]+): (.*)$")

Outcome = tuple[str, str]


def dry_run(*args: str) -> tuple[int, dict[str, Outcome], str]:
    """Run the dry mode; its exit code, `check -> (status, detail)`, and its whole output."""
    done = subprocess.run([str(RUN_SH), "--dry-run", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=DRY_RUN_TIMEOUT, check=False)
    output = done.stdout + done.stderr
    results: dict[str, Outcome] = {}
    current: str | None = None
    for line in done.stdout.splitlines():
        match = LINE.match(line)
        if match:
            current = match[2]
            results[current] = (match[1], match[3])
        elif current is not None:  # a multi-line detail (shellcheck's or pytest's report)
            status, detail = results[current]
            results[current] = (status, f"{detail}\n{line}")
    return done.returncode, results, output


@pytest.fixture(scope="module")
def dry() -> tuple[int, dict[str, Outcome], str]:
    return dry_run()


def test_the_dry_mode_reports_every_check_and_exits_zero(
    dry: tuple[int, dict[str, Outcome], str],
) -> None:
    code, results, output = dry
    assert tuple(results) == CHECKS, output
    assert [name for name, (status, _) in results.items() if status == "FAIL"] == [], output
    assert code == 0, output


@pytest.mark.parametrize("check", [c for c in CHECKS if c != "shellcheck"])
def test_a_check_that_needs_no_extra_tool_passes(
    dry: tuple[int, dict[str, Outcome], str], check: str
) -> None:
    _, results, output = dry
    assert results.get(check, ("missing", ""))[0] == "ok", output


def test_the_suite_scripts_pass_shellcheck(dry: tuple[int, dict[str, Outcome], str]) -> None:
    _, results, output = dry
    status, detail = results.get("shellcheck", ("missing", ""))
    if status == "skip":
        pytest.skip(detail)
    assert status == "ok", output
    assert "run.sh" in detail, output


def test_shellcheck_finds_a_known_bad_script(tmp_path: Path) -> None:
    """The linter the dry mode relies on really reports problems (not a no-op)."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (Debian/Ubuntu: apt-get install shellcheck)")
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nrm -rf $1/*\n')
    done = subprocess.run([shellcheck, str(bad)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode != 0 and "SC2086" in done.stdout, done.stdout + done.stderr


def test_the_collected_suite_is_the_eight_kind_tests(
    dry: tuple[int, dict[str, Outcome], str],
) -> None:
    _, results, output = dry
    assert results["collect"] == ("ok", "8 tests with GPROXY_KIND=1, none without"), output


BAD_KIND_CONFIGS = {
    "wrong apiVersion": ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\nnodes:\n"
                         "  - role: control-plane\n    extraPortMappings:\n"
                         "      - {containerPort: 5000, hostPort: 15000}\n", "apiVersion"),
    "wrong kind": ("kind: Config\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"
                   "  - role: control-plane\n    extraPortMappings:\n"
                   "      - {containerPort: 5000, hostPort: 15000}\n", "kind is 'Config'"),
    "no port mapping": ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"
                        "  - role: control-plane\n", "hostPort 15000"),
    "not YAML": ("kind: Cluster\n  apiVersion: [\n", "does not parse"),
}


@pytest.mark.parametrize("case", BAD_KIND_CONFIGS)
def test_a_broken_kind_config_fails_the_dry_mode(tmp_path: Path, case: str) -> None:
    text, reason = BAD_KIND_CONFIGS[case]
    config = tmp_path / "kind-config.yaml"
    config.write_text(text)
    code, results, output = dry_run("--kind-config", str(config))
    status, detail = results.get("kind-config", ("missing", ""))
    assert code == 1 and status == "FAIL", output
    assert reason in detail, output


BAD_WORKFLOWS = {
    "no upload": ("on: push\njobs:\n  kind:\n    runs-on: ubuntu-latest\n    steps:\n"
                  "      - run: integration/kind/run.sh\n", "upload-artifact"),
    "upload only on success": (
        "on: push\njobs:\n  kind:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: integration/kind/run.sh\n"
        "      - uses: actions/upload-artifact@v4\n        with: {path: logs}\n",
        "if: always()"),
    "dry run only": ("on: push\njobs:\n  kind:\n    runs-on: ubuntu-latest\n    steps:\n"
                     "      - run: integration/kind/run.sh --dry-run\n"
                     "      - uses: actions/upload-artifact@v4\n        if: always()\n",
                     "no step runs integration/kind/run.sh"),
    "not YAML": ("jobs: [\n", "does not parse"),
}


@pytest.mark.parametrize("case", BAD_WORKFLOWS)
def test_a_broken_workflow_fails_the_dry_mode(tmp_path: Path, case: str) -> None:
    text, reason = BAD_WORKFLOWS[case]
    workflow = tmp_path / "kind.yml"
    workflow.write_text(text)
    code, results, output = dry_run("--workflow", str(workflow))
    status, detail = results.get("workflow", ("missing", ""))
    assert code == 1 and status == "FAIL", output
    assert reason in detail, output
