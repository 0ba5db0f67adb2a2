"""kubectl, as the kind suite uses it: one subprocess per command, bounded, output in errors.

The cluster is whatever $KUBECONFIG's current context names; run.sh points it at a kubeconfig
of its own that holds only the kind cluster, and `check_context` refuses any other context, so
these tests never scale or delete pods in a real cluster.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

KUBECTL_TIMEOUT = 60.0
"""Seconds one kubectl command may take (not a rollout: those pass their own --timeout)."""


def kubectl(*args: str, timeout: float = KUBECTL_TIMEOUT) -> str:
    """Run kubectl; its stdout, or an AssertionError that shows the command and its stderr."""
    try:
        done = subprocess.run(["kubectl", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"kubectl {' '.join(args)}: no answer in {timeout}s") from e
    if done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr.strip()}")
    return done.stdout


def check_context(cluster: str) -> None:
    """Refuse to run against anything but the kind cluster named `cluster`."""
    context = kubectl("config", "current-context").strip()
    if context != f"kind-{cluster}":
        raise AssertionError(f"current kubectl context is {context!r}, not kind-{cluster}: "
                             "run the suite through integration/kind/run.sh")


def get_json(*args: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(kubectl("get", *args, "-o", "json"))
    return value


def ready_pods(*, namespace: str, selector: str) -> set[str]:
    """Names of the pods matching `selector` that are Ready and not being deleted."""
    pods = get_json("pods", "-n", namespace, "-l", selector)["items"]
    return {
        pod["metadata"]["name"]
        for pod in pods
        if "deletionTimestamp" not in pod["metadata"]
        and any(c["type"] == "Ready" and c["status"] == "True"
                for c in pod.get("status", {}).get("conditions", []))
    }


def rollout_status(kind_name: str, *, namespace: str, timeout: float) -> None:
    kubectl("rollout", "status", kind_name, "-n", namespace, f"--timeout={int(timeout)}s",
            timeout=timeout + KUBECTL_TIMEOUT)
