"""The kind cluster as a :class:`harness.scenarios.Cluster`, through kubectl.

The same scenarios run in ``tests/cluster`` against the real control plane with kwok nodes;
only this adapter differs. Clients run on the kind host (no command prefix) and reach the
proxy through the node's published hostPort.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.scenarios import BACKEND, BACKEND_NAMESPACE
from integration.kind.kube import get_json, kubectl

SELECTOR = "app.kubernetes.io/name=backend"


@dataclass
class KindCluster:
    log_dir: Path
    proxy_address: str = os.environ.get("GPROXY_KIND_PROXY_ADDRESS", "127.0.0.1:15000")
    command_prefix: Sequence[str] = field(default_factory=list)

    def backend_pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = get_json("pods", "-n", BACKEND_NAMESPACE,
                                               "-l", SELECTOR)["items"]
        return items

    def backend_slices(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = get_json(
            "endpointslices", "-n", BACKEND_NAMESPACE,
            "-l", f"kubernetes.io/service-name={BACKEND}")["items"]
        return items

    def scale(self, replicas: int) -> None:
        kubectl("scale", f"deployment/{BACKEND}", "-n", BACKEND_NAMESPACE,
                f"--replicas={replicas}")

    def restart(self) -> None:
        kubectl("rollout", "restart", f"deployment/{BACKEND}", "-n", BACKEND_NAMESPACE)

    def delete_pod(self, name: str) -> None:
        kubectl("delete", "pod", name, "-n", BACKEND_NAMESPACE, "--wait=false")
