"""Test backends on chosen addresses: several loopback hosts sharing one port, as DNS gives them.

A DNS answer carries addresses, not ports, so the backends behind one name must all listen on
the same port: `start_on_shared_port` picks a port free on every host and starts one backend per
host on it, trying another port if one was taken in between.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.processes import (
    BACKEND_START_TIMEOUT,
    REPO,
    Backend,
    Launcher,
    read_line,
)

PORT_ATTEMPTS = 20
"""Ports tried before giving up on one that is free on every host."""

SharedPortBackends = Callable[..., tuple[int, dict[str, "HostedBackend"]]]
"""The `shared_port_backends` fixture: `start_on_shared_port` without the launcher."""


def authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HostedBackend(Backend):
    """A `tests.support.backend` process on `host:port` (port 0: any)."""

    def __init__(self, name: str, *, host: str, port: int, log_dir: Path) -> None:
        self.name = name
        self.host = host
        self.log_path = log_dir / f"backend-{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.backend",
                "--name",
                name,
                "--host",
                host,
                "--port",
                str(port),
                "--stop-on-stdin-eof",
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,  # closed when this process dies: the backend then stops
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        try:
            line = read_line(self.process.stdout, timeout=BACKEND_START_TIMEOUT)
        except TimeoutError:
            self.kill()
            raise
        if not line.startswith(b"PORT "):
            self.kill()
            raise RuntimeError(f"backend {name} did not start on {host}:{port}\n{self.output()}")
        self.port = int(line.split()[1])
        self.address = authority(host, self.port)


def port_free_on(hosts: Sequence[str]) -> int:
    """A TCP port that was free a moment ago on every one of `hosts`."""
    for _ in range(PORT_ATTEMPTS):
        first = socket.socket(socket.AF_INET6 if ":" in hosts[0] else socket.AF_INET)
        with first:
            first.bind((hosts[0], 0))
            port: int = first.getsockname()[1]
            if all(_bindable(host, port) for host in hosts[1:]):
                return port
    raise RuntimeError(f"no port free on all of {hosts} after {PORT_ATTEMPTS} attempts")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def start_on_shared_port(
    launcher: Launcher, hosts: dict[str, str], *, also_free_on: Sequence[str] = ()
) -> tuple[int, dict[str, HostedBackend]]:
    """Start one backend per `name: host`, all on one port; return the port and the backends.

    The port is also chosen free on `also_free_on`: hosts where nothing must listen on it.
    Every backend started is handed to `launcher`, which stops it at teardown.
    """
    for _ in range(PORT_ATTEMPTS):
        port = port_free_on([*hosts.values(), *also_free_on])
        started: dict[str, HostedBackend] = {}
        try:
            for name, host in hosts.items():
                backend = HostedBackend(name, host=host, port=port, log_dir=launcher.log_dir)
                launcher.backends.append(backend)
                started[name] = backend
        except RuntimeError:
            for backend in started.values():
                backend.stop()
            continue  # someone took the port between the check and the bind
        return port, started
    raise RuntimeError(f"could not start backends on one shared port for {hosts}")
