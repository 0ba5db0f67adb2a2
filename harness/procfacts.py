"""Process and socket facts through psutil: children, identities, listeners, connections,
CPU time and memory. The one place tests and bench learn about processes; nothing here
signals anything.

- A `ProcessId` is a pid plus its creation time, so a later process reusing the pid never
  matches one this harness started.
- Listeners and connections are TCP sockets of the caller's network namespace (IPv4 and IPv6).
  `listeners` names, for each LISTEN socket on the port, the process psutil finds holding it
  (the first, if several processes inherited the same socket).
- CPU time is user + system time of a process, all its threads (``/proc/PID/stat`` utime +
  stime); RSS is resident pages (VmRSS); PSS is each shared page divided by the number of
  processes mapping it (``smaps_rollup``), so a sum over processes is their real share of RAM.

Every reader tolerates processes that vanish or turn zombie while it looks: the tests kill
processes on purpose. Called from any thread; no state is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)
"""What psutil raises for a process that has exited (or that we may not read)."""


@dataclass(frozen=True)
class ProcessId:
    """A pid plus its creation time (seconds since the epoch), so a reused pid never matches."""

    pid: int
    create_time: float


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except GONE:
        return False


def identify(pid: int) -> ProcessId | None:
    """The identity of a live process, or None if it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        if not _alive(process):
            return None
        return ProcessId(pid, process.create_time())
    except GONE:
        return None


def is_running(ident: ProcessId) -> bool:
    """True while that very process (not a later one with its pid) is alive."""
    found = identify(ident.pid)
    return found is not None and found.create_time == ident.create_time


def command_line(pid: int) -> list[str]:
    """The argv of ``pid`` (empty if it is gone or a zombie)."""
    try:
        return psutil.Process(pid).cmdline()
    except GONE:
        return []


def children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``pid``, sorted."""
    return _below(pid, recursive=False)


def descendants(pid: int) -> list[int]:
    """Live children, grandchildren, ... of ``pid``, sorted."""
    return _below(pid, recursive=True)


def _below(pid: int, *, recursive: bool) -> list[int]:
    try:
        found = psutil.Process(pid).children(recursive=recursive)
    except GONE:
        return []
    return sorted(child.pid for child in found if _alive(child))


def listeners(port: int) -> set[int]:
    """PIDs of processes holding a LISTEN TCP socket on ``port`` (any address)."""
    return {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
        and conn.laddr
        and conn.laddr.port == port
        and conn.pid is not None
    }


def _tcp_connections(pid: int) -> list[tuple[str, int, int]]:
    """``(status, local port, fd)`` of each TCP socket ``pid`` holds (none if it is gone)."""
    try:
        found = psutil.Process(pid).net_connections(kind="tcp")
    except GONE:
        return []
    return [(conn.status, conn.laddr.port, conn.fd) for conn in found if conn.laddr]


def accepted_connections(port: int, pids: Iterable[int]) -> dict[int, int]:
    """For each of ``pids``: how many ESTABLISHED connections with local port ``port`` it
    holds (the connections it accepted on that listening port)."""
    return {
        pid: sum(
            1
            for status, local_port, _ in _tcp_connections(pid)
            if status == psutil.CONN_ESTABLISHED and local_port == port
        )
        for pid in pids
    }


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes (all threads); vanished ones count 0."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except GONE:
            continue
        total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (nor waiting for I/O), summed over
    cores: user + nice + system + irq + softirq + steal."""
    times = psutil.cpu_times()
    return (
        times.user + times.nice + times.system + times.irq + times.softirq + times.steal
    )


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident set size and proportional set size of one process, in KiB."""

    rss_kib: int
    pss_kib: int | None

    def as_json(self) -> dict[str, float | None]:
        return {
            "rss_mib": mib(self.rss_kib),
            "pss_mib": None if self.pss_kib is None else mib(self.pss_kib),
        }


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def read_memory(pid: int) -> Memory | None:
    """RSS and PSS of ``pid`` (PSS None where the kernel or permissions give none); None if
    the process is gone."""
    try:
        process = psutil.Process(pid)
        rss = process.memory_info().rss // 1024
    except GONE:
        return None
    try:
        pss: int | None = process.memory_full_info().pss // 1024
    except (*GONE, AttributeError):
        pss = None
    return Memory(rss, pss)


@dataclass
class PeakMemory:
    """The largest RSS and PSS seen per pid over repeated samples."""

    rss_kib: dict[int, int]
    pss_kib: dict[int, int]

    @classmethod
    def empty(cls) -> PeakMemory:
        return cls({}, {})

    def sample(self, pids: Iterable[int]) -> None:
        for pid in pids:
            memory = read_memory(pid)
            if memory is None:
                continue
            self.rss_kib[pid] = max(self.rss_kib.get(pid, 0), memory.rss_kib)
            if memory.pss_kib is not None:
                self.pss_kib[pid] = max(self.pss_kib.get(pid, 0), memory.pss_kib)

    def of(self, pid: int) -> Memory | None:
        if pid not in self.rss_kib:
            return None
        return Memory(self.rss_kib[pid], self.pss_kib.get(pid))
