"""Test-side handles on the churn tier's own peers: the UNAVAILABLE backend process, /metrics,
and which proxy process holds each client connection.

Concurrency: used from the test thread only.
"""

from __future__ import annotations

import os
import re
import urllib.request

from tests.churn.unavailable_backend import CONTROL_METHOD
from tests.support import client, procfs
from tests.support.processes import Backend

TCP_ESTABLISHED = "01"
"""``st`` column value of an ESTABLISHED socket in /proc/net/tcp."""


class UnavailableBackend(Backend):
    """A running ``tests.churn.unavailable_backend``; started and stopped like any test backend."""

    MODULE = "tests.churn.unavailable_backend"
    LOG_PREFIX = "unavailable"

    def refused(self) -> int:
        """Calls this backend has answered UNAVAILABLE so far."""
        with client.open_channel(self.address) as channel:
            callable_ = channel.unary_unary(
                CONTROL_METHOD, request_serializer=None, response_deserializer=None
            )
            reply: bytes = callable_(b"", timeout=5)
        return int(reply)


def scrape(admin: str) -> str:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every `name{...}` series whose labels include `labels`."""
    total = 0.0
    for match in re.finditer(rf"^{name}\{{(.*)\}} (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match[2])
    return total


def _established_inodes(port: int) -> set[str]:
    """Inodes of ESTABLISHED TCP sockets whose local port is `port` (the server side)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (procfs.PROC / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_ESTABLISHED and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def accepted_connections(port: int, pids: set[int]) -> dict[int, int]:
    """For each of `pids`: how many accepted connections on `port` it holds."""
    wanted = {f"socket:[{inode}]" for inode in _established_inodes(port)}
    held = dict.fromkeys(pids, 0)
    for pid in pids:
        fd_dir = procfs.PROC / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for fd in fds:
            try:
                if os.readlink(fd_dir / fd) in wanted:
                    held[pid] += 1
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return held
