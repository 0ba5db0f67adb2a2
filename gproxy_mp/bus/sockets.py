"""Where the bus lives: a private runtime directory and the three ipc:// addresses in it.

The directory is created mode 0700 by the supervisor and removed on exit, so no other local
user can connect to the sockets and inject endpoints. Socket options shared by both ends live
here too, so the two ends cannot drift apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

STATUS_HWM = 100
"""Status messages a worker queues while the supervisor is slow; beyond that they are dropped
(each is a full report, the next one replaces it)."""


@dataclass(frozen=True, slots=True)
class BusAddresses:
    runtime_dir: Path

    @property
    def updates(self) -> str:
        return f"ipc://{self.runtime_dir / 'updates'}"

    @property
    def snapshot(self) -> str:
        return f"ipc://{self.runtime_dir / 'snapshot'}"

    @property
    def status(self) -> str:
        return f"ipc://{self.runtime_dir / 'status'}"


def create_runtime_dir() -> Path:
    """A fresh private (0700) directory for the bus sockets, under $XDG_RUNTIME_DIR if set."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and not Path(base).is_dir():
        base = None
    path = Path(tempfile.mkdtemp(prefix="gproxy-mp-", dir=base))
    path.chmod(0o700)  # mkdtemp already does; say it where a reader looks for it
    return path


def remove_runtime_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def configure_socket(socket: zmq.Socket[Any]) -> None:
    """Close at once on exit (never hang on undelivered messages); never block on send."""
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, STATUS_HWM if socket.type == zmq.PUSH else 10_000)
