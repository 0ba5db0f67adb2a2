"""The kind suite's dry mode: everything about it that can be checked without Docker.

    integration/kind/run.sh --dry-run [--kind-config PATH] [--workflow PATH]
    python -m integration.kind.dry_run [same options]

Checks, each reported as one line `ok|skip|FAIL <check>: <detail>`:

- shellcheck: every `*.sh` of integration/kind (skipped with an install hint when shellcheck
  is not installed);
- kind-config: the cluster config parses as YAML and is a kind `Cluster` of
  `kind.x-k8s.io/v1alpha4` with at least one node, and the hostPort the tests reach the proxy
  on (127.0.0.1:15000) is published;
- manifests: every YAML file of integration/kind/manifests parses;
- workflow: .github/workflows/kind.yml parses, runs run.sh on ubuntu-latest and uploads the
  logs as an artifact even when the run failed;
- collect: `pytest --collect-only integration/kind` with GPROXY_KIND=1 (the suite's guard)
  imports every test module and finds tests, and without it collects none.

Exit status 0 when nothing failed (skips allowed), 1 otherwise. Creates no cluster, needs no
network; every subprocess has a timeout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KIND_CONFIG = HERE / "kind-config.yaml"
WORKFLOW = REPO / ".github" / "workflows" / "kind.yml"
KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
PROXY_HOST_PORT = 15000
"""The port test_kind.py reaches the proxy on (GPROXY_KIND_PROXY_ADDRESS in run.sh)."""
SHELLCHECK_TIMEOUT = 60.0
"""Seconds shellcheck may take over the suite's scripts."""
COLLECT_TIMEOUT = 120.0
"""Seconds one `pytest --collect-only` may take (imports grpc and the test modules)."""
INSTALL_HINT = "shellcheck not installed (Debian/Ubuntu: apt-get install shellcheck)"

Result = tuple[str, str]
"""(`ok` | `skip` | `FAIL`, detail)."""


def check_shellcheck() -> Result:
    scripts = sorted(HERE.glob("*.sh"))
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        return "skip", INSTALL_HINT
    done = subprocess.run([shellcheck, "--external-sources", *map(str, scripts)],
                          capture_output=True, text=True, timeout=SHELLCHECK_TIMEOUT,
                          check=False)
    names = ", ".join(s.name for s in scripts)
    if done.returncode != 0:
        return "FAIL", f"{names}:\n{done.stdout}{done.stderr}"
    return "ok", names


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def kind_config_problems(path: Path) -> list[str]:
    try:
        docs = load_yaml_documents(path)
    except (OSError, yaml.YAMLError) as error:
        return [f"does not parse: {error}"]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return [f"expected one mapping, found {len(docs)} document(s)"]
    config: dict[str, Any] = docs[0]
    problems = []
    if config.get("kind") != "Cluster":
        problems.append(f"kind is {config.get('kind')!r}, not 'Cluster'")
    if config.get("apiVersion") != KIND_API_VERSION:
        problems.append(f"apiVersion is {config.get('apiVersion')!r}, not {KIND_API_VERSION!r}")
    nodes = config.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        return [*problems, "no nodes"]
    mappings = [m for node in nodes if isinstance(node, dict)
                for m in node.get("extraPortMappings") or []]
    if not any(isinstance(m, dict) and m.get("hostPort") == PROXY_HOST_PORT for m in mappings):
        problems.append(f"no extraPortMappings entry publishes hostPort {PROXY_HOST_PORT}")
    return problems


def check_kind_config(path: Path) -> Result:
    problems = kind_config_problems(path)
    return ("FAIL", f"{path}: {'; '.join(problems)}") if problems else ("ok", str(path))


def check_manifests() -> Result:
    files = sorted(HERE.glob("manifests/*.yaml"))
    if not files:
        return "FAIL", "no YAML files in integration/kind/manifests"
    for path in files:
        try:
            load_yaml_documents(path)
        except yaml.YAMLError as error:
            return "FAIL", f"{path.name} does not parse: {error}"
    return "ok", ", ".join(p.name for p in files)


def workflow_problems(path: Path) -> list[str]:
    try:
        docs = load_yaml_documents(path)
    except (OSError, yaml.YAMLError) as error:
        return [f"does not parse: {error}"]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return [f"expected one mapping, found {len(docs)} document(s)"]
    workflow: dict[Any, Any] = docs[0]
    problems = []
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean true.
    if "on" not in workflow and True not in workflow:
        problems.append("no `on:` triggers")
    jobs = workflow.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return [*problems, "no jobs"]
    steps = [step for job in jobs.values() if isinstance(job, dict)
             for step in job.get("steps") or [] if isinstance(step, dict)]
    if not any(isinstance(job, dict) and job.get("runs-on") == "ubuntu-latest"
               for job in jobs.values()):
        problems.append("no job runs on ubuntu-latest")
    if not any(re.search(r"integration/kind/run\.sh(?!\s+--dry-run)", str(step.get("run", "")))
               for step in steps):
        problems.append("no step runs integration/kind/run.sh")
    uploads = [step for step in steps
               if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    if not uploads:
        problems.append("no actions/upload-artifact step for the logs")
    elif not any("always()" in str(step.get("if", "")) for step in uploads):
        problems.append("the upload-artifact step lacks `if: always()`: failed runs keep no logs")
    return problems


def check_workflow(path: Path) -> Result:
    problems = workflow_problems(path)
    return ("FAIL", f"{path}: {'; '.join(problems)}") if problems else ("ok", str(path))


def collect(*, guard: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "GPROXY_KIND"}
    if guard:
        env["GPROXY_KIND"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         str(HERE)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=COLLECT_TIMEOUT, check=False)


def check_collect() -> Result:
    guarded = collect(guard=True)
    tests = [line for line in guarded.stdout.splitlines() if "::" in line]
    if guarded.returncode != 0 or not tests:
        return "FAIL", (f"GPROXY_KIND=1 collection exited {guarded.returncode} with "
                        f"{len(tests)} tests:\n{guarded.stdout[-3000:]}{guarded.stderr[-2000:]}")
    unguarded = collect(guard=False)
    leaked = [line for line in unguarded.stdout.splitlines() if "::" in line]
    if leaked:
        return "FAIL", f"without GPROXY_KIND=1 the suite still collects {len(leaked)} tests"
    return "ok", f"{len(tests)} tests with GPROXY_KIND=1, none without"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="integration/kind/run.sh --dry-run")
    parser.add_argument("--kind-config", type=Path, default=KIND_CONFIG)
    parser.add_argument("--workflow", type=Path, default=WORKFLOW)
    args = parser.parse_args(argv)
    checks: dict[str, Callable[[], Result]] = {
        "shellcheck": check_shellcheck,
        "kind-config": lambda: check_kind_config(args.kind_config),
        "manifests": check_manifests,
        "workflow": lambda: check_workflow(args.workflow),
        "collect": check_collect,
    }
    failed = 0
    for name, check in checks.items():
        status, detail = check()
        failed += status == "FAIL"
        print(f"{status} {name}: {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
