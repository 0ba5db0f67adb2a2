"""Backends on chosen addresses: several loopback hosts sharing one port, as DNS gives them.

A DNS answer carries addresses, not ports, so the backends behind one name must all listen on
the same port: `start_on_shared_port` picks a port free on every host and starts one backend per
host on it, trying another port if one was taken in between.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from harness.peers import Backend, Launcher

PORT_ATTEMPTS = 20
"""Ports tried before giving up on one that is free on every host."""

SharedPortBackends = Callable[..., tuple[int, dict[str, Backend]]]
"""The `shared_port_backends` fixture: `start_on_shared_port` without the launcher."""


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
) -> tuple[int, dict[str, Backend]]:
    """Start one backend per `name: host`, all on one port; return the port and the backends.

    The port is also chosen free on `also_free_on`: hosts where nothing must listen on it.
    Every backend started is handed to `launcher`, which stops it at teardown.
    """
    for _ in range(PORT_ATTEMPTS):
        port = port_free_on([*hosts.values(), *also_free_on])
        started: dict[str, Backend] = {}
        try:
            for name, host in hosts.items():
                started[name] = launcher.start_backend(name, host=host, port=port)
        except RuntimeError:
            for backend in started.values():
                backend.stop()
            continue  # someone took the port between the check and the bind
        return port, started
    raise RuntimeError(f"could not start backends on one shared port for {hosts}")
