"""Locate the Kubernetes programs in .cache/testbin/, building them once if they are missing.

The builds are ``harness.testbin``'s peers ``k8s`` (``scripts/build-k8s-testbin.sh``:
kube-apiserver, etcd, kube-controller-manager, kube-scheduler) and ``kwok``
(``scripts/build-kwok.sh``): locked, in their own process group, normally done by ``make peers``
before pytest starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import testbin
from harness.testbin import REPO, BuildError, GoMissingError

__all__ = [
    "Binaries",
    "BuildError",
    "GoMissingError",
    "ensure_binaries",
    "ensure_kwok",
    "wanted_version",
]


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kube_controller_manager: Path
    kube_scheduler: Path


def ensure_binaries() -> Binaries:
    """The binaries; raises GoMissingError (skip) or BuildError (fail)."""
    kube_apiserver, etcd, controller_manager, scheduler = testbin.build("k8s")
    return Binaries(
        kube_apiserver=kube_apiserver,
        etcd=etcd,
        kube_controller_manager=controller_manager,
        kube_scheduler=scheduler,
    )


def ensure_kwok() -> Path:
    """kwok, the node and pod-lifecycle simulator; raises as :func:`ensure_binaries`."""
    (kwok,) = testbin.build("kwok")
    return kwok


def wanted_version() -> str:
    """The Kubernetes version the wrapper module pins, e.g. ``v1.37.2``."""
    for line in (REPO / "testbin" / "k8s" / "go.mod").read_text().splitlines():
        words = line.split()
        if words[:1] == ["require"]:
            words = words[1:]
        if words[:1] == ["k8s.io/kubernetes"]:
            return words[1]
    raise LookupError("no k8s.io/kubernetes requirement in testbin/k8s/go.mod")
