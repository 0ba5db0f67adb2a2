"""What a result records about the run's machine and versions (discovery and scale).

Read once, at the end of a run; nothing here measures. ``cost`` records its own, wider set
(nginx, h2load and HAProxy versions, kernel, git), in its ``meta.versions``.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from typing import Any

import grpc


def environment(**extra: object) -> dict[str, Any]:
    """Python, grpcio and gproxy-mp versions and the CPU count; ``extra`` adds e.g. the
    Kubernetes version or the load averages."""
    return {
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
        "gproxy_mp": version("gproxy-mp"),
        **extra,
        "cpus": os.cpu_count(),
    }
