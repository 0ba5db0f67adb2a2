"""Memory and CPU of gproxy-mp's processes, read from Linux /proc (no psutil).

- RSS is `VmRSS` of `/proc/PID/status`: every resident page the process maps, shared ones
  (the interpreter, libgrpc, pages a worker shares with nothing but still maps) counted in
  full, so a sum over processes overstates what they cost together.
- PSS is `Pss` of `/proc/PID/smaps_rollup` (Linux 4.14+): each shared page divided by the
  number of processes mapping it; summed over processes it is their real share of RAM. None
  when the kernel has no smaps_rollup or the process is gone.
- CPU is utime + stime of `/proc/PID/stat` (`bench.peers.cpu_seconds`), all threads.

Every reader returns None for a process that has vanished; nothing here signals anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kib: int
    pss_kib: int | None

    def as_json(self) -> dict[str, float | None]:
        return {
            "rss_mib": mib(self.rss_kib),
            "pss_mib": None if self.pss_kib is None else mib(self.pss_kib),
        }


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _field_kib(path: Path, name: str) -> int | None:
    """The `name:   123 kB` line of a /proc file, in KiB."""
    try:
        text = path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    for line in text.splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return None


def read_memory(pid: int) -> Memory | None:
    rss = _field_kib(PROC / str(pid) / "status", "VmRSS")
    if rss is None:
        return None
    return Memory(rss, _field_kib(PROC / str(pid) / "smaps_rollup", "Pss"))


def children(pid: int) -> list[int]:
    """The live direct children of `pid` (gproxy-mp's workers, for its supervisor)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


@dataclass
class PeakMemory:
    """The largest RSS and PSS seen per pid over repeated samples."""

    rss_kib: dict[int, int]
    pss_kib: dict[int, int]

    @classmethod
    def empty(cls) -> PeakMemory:
        return cls({}, {})

    def sample(self, pids: list[int]) -> None:
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
