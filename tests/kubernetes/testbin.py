"""Locate kube-apiserver and etcd in .cache/testbin/, building them once if they are missing.

The build (``scripts/build-k8s-testbin.sh``) is idempotent and needs only Go and the Go module
proxy; a cold build takes minutes, a warm one seconds. Its output goes to a log file next to
the binaries so a failure is reported with its cause.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-k8s-testbin.sh"
TESTBIN = REPO / ".cache" / "testbin"
BUILD_TIMEOUT = 45 * 60.0
"""Seconds a cold build may take (measured 5.5 to 9 min on 2 shared cores; warm: seconds)."""
VERSION_TIMEOUT = 10.0


class GoMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path


def ensure_binaries() -> Binaries:
    """The binaries, after running the (idempotent) build script; it is quick when warm."""
    if shutil.which("go") is None and not (TESTBIN / "kube-apiserver").exists():
        raise GoMissingError("go not installed: cannot build kube-apiserver")
    log = TESTBIN / "build.log"
    TESTBIN.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        text = log.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(
            f"{BUILD_SCRIPT.name} failed ({result.returncode}); log {log}:\n" + "\n".join(text)
        )
    return Binaries(kube_apiserver=TESTBIN / "kube-apiserver", etcd=TESTBIN / "etcd")


def wanted_version() -> str:
    """The Kubernetes version the wrapper module pins, e.g. ``v1.37.2``."""
    for line in (REPO / "testbin" / "k8s" / "go.mod").read_text().splitlines():
        words = line.split()
        if words[:1] == ["require"]:
            words = words[1:]
        if words[:1] == ["k8s.io/kubernetes"]:
            return words[1]
    raise LookupError("no k8s.io/kubernetes requirement in testbin/k8s/go.mod")
