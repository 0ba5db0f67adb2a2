"""`gproxy-mp --check` against the real API server: permissions asked with
SelfSubjectAccessReview, the Service's endpoints listed once, a table, and the exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.kube.cluster import Kube, endpoint
from harness.kube.netns import BACKEND_ADDRESSES, NetworkNamespace
from harness.kube.routes import GRPC, listen
from tests.deploy.manifests import all_manifest_objects, find_object

pytestmark = pytest.mark.timeout(120)

SHIPPED_RULES = find_object(all_manifest_objects(), "ClusterRole", "gproxy-mp")["rules"]
WITHOUT_LIST = [
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "watch"]},
]


def run_check(
    namespace: NetworkNamespace, kubeconfig: Path, target: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "gproxy_mp", "--check", "-p", f"{listen()}-{target}",
            "--kubeconfig", str(kubeconfig)]
    return subprocess.run(namespace.command(argv), capture_output=True, text=True, timeout=60,
                          check=False)


def test_check_passes_with_the_shipped_rbac_and_lists_the_endpoints(
    kube: Kube, echo: str, network_namespace: NetworkNamespace, tmp_path: Path
) -> None:
    kube.create_slice(echo, "echo", endpoints=[endpoint(BACKEND_ADDRESSES[0])], ports=GRPC)
    kubeconfig = kube.service_account_kubeconfig(
        echo, tmp_path / "sa.kubeconfig", rules=SHIPPED_RULES
    )
    result = run_check(network_namespace, kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    report = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    for verb in ("get", "list", "watch"):
        assert f"{verb} endpointslices.discovery.k8s.io in namespace {echo}" in result.stdout
    assert f"{BACKEND_ADDRESSES[0]}:" in result.stdout, report
    assert "FAIL" not in result.stdout, report


def test_check_reports_a_missing_list_verb_and_fails(
    kube: Kube, echo: str, network_namespace: NetworkNamespace, tmp_path: Path
) -> None:
    kube.create_slice(echo, "echo", endpoints=[endpoint(BACKEND_ADDRESSES[0])], ports=GRPC)
    kubeconfig = kube.service_account_kubeconfig(
        echo, tmp_path / "sa.kubeconfig", rules=WITHOUT_LIST
    )
    result = run_check(network_namespace, kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    report = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 1, report
    rows = {line.split("  ")[1].strip(): line for line in result.stdout.splitlines()[1:]
            if "  " in line}
    list_row = next(line for check, line in rows.items()
                    if check.startswith("list endpointslices"))
    assert "FAIL" in list_row, report
    watch_row = next(line for check, line in rows.items()
                     if check.startswith("watch endpointslices"))
    assert "ok" in watch_row, report
