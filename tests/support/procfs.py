"""Read process facts from Linux ``/proc``: children, start times, listeners.

No psutil: each fact is a few lines of ``/proc`` parsing. Every reader
tolerates processes that vanish while it looks (``FileNotFoundError``,
``ProcessLookupError``) because the tests kill processes on purpose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"
"""``st`` column value of a LISTEN socket in /proc/net/tcp{,6}."""


@dataclass(frozen=True)
class ProcessId:
    """A pid plus its start time (clock ticks since boot), so a reused pid never matches."""

    pid: int
    start_time: int


def read_stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start_time)`` of ``pid``, or None if it is gone or a zombie."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    state, ppid, start_time = fields[0], int(fields[1]), int(fields[19])
    if state in ("Z", "X"):
        return None
    return ppid, start_time


def identify(pid: int) -> ProcessId | None:
    stat = read_stat(pid)
    return None if stat is None else ProcessId(pid, stat[1])


def is_running(process: ProcessId) -> bool:
    """True while that very process (not a later one with its pid) is alive."""
    stat = read_stat(process.pid)
    return stat is not None and stat[1] == process.start_time


def all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``pid``, sorted."""
    found = []
    for candidate in all_pids():
        stat = read_stat(candidate)
        if stat is not None and stat[0] == pid:
            found.append(candidate)
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of ``pid``, sorted."""
    parents: dict[int, list[int]] = {}
    for candidate in all_pids():
        stat = read_stat(candidate)
        if stat is not None:
            parents.setdefault(stat[0], []).append(candidate)
    found: list[int] = []
    queue = list(parents.get(pid, ()))
    while queue:
        child = queue.pop()
        found.append(child)
        queue.extend(parents.get(child, ()))
    return sorted(found)


def listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on ``port`` (any address, IPv4 or IPv6)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def listeners(port: int) -> set[int]:
    """PIDs of processes holding a LISTEN TCP socket on ``port``."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    if not wanted:
        return set()
    holders: set[int] = set()
    for pid in all_pids():
        try:
            fds = os.listdir(PROC / str(pid) / "fd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for fd in fds:
            try:
                if os.readlink(PROC / str(pid) / "fd" / fd) in wanted:
                    holders.add(pid)
                    break
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return holders
