"""Which cores each role of ``python -m bench scaling`` runs on, and which worker counts it tries.

Pure: plain data in, plain data out (``read_siblings`` apart, which reads sysfs). From the CPUs
this process may use (``os.sched_getaffinity(0)``), grouped into physical cores by their SMT
siblings (``/sys/devices/system/cpu/cpuN/topology/thread_siblings_list``), in ascending order:

- the **proxy under test** gets the first physical cores, all that the two roles below leave
  (about half), and only **one logical CPU of each**: a worker never shares a physical core
  with another worker or role; the siblings stay idle (``unused``). A step with N workers runs
  on the first N of these CPUs;
- the **backends** (fixed-response nginx, one worker each) get a quarter of the physical cores
  (at least one), every logical CPU of them;
- the **load generator** (h2load, one thread per CPU) gets the last quarter (at least one).

So 4 cores split 2/1/1, 8 cores 4/2/2, 16 cores 8/4/4, 64 cores 32/16/16. Worker counts are
1, 2, 4, 8, ... up to the proxy's cores (and that count itself when it is not a power of two),
capped at ``max_workers``.

With fewer than 3 physical cores the roles cannot each have their own: the plan is then
*overlapped*. Fewer than 3 logical CPUs: every role runs on every CPU and the proxy's steps go
up to all of them. At least 3 logical CPUs on fewer than 3 physical cores: the logical CPUs are
split as above, but roles share physical cores. Such a run exercises the command but measures
contention, not scaling; ``describe`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_SEPARATE = 3
"""Fewest cores on which the proxy, the backends and the load generator get cores of their
own."""
SYSFS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class CorePlan:
    proxy: tuple[int, ...]
    backends: tuple[int, ...]
    loadgen: tuple[int, ...]
    worker_counts: tuple[int, ...]
    overlapped: bool
    reason: str = ""
    """Why the plan overlaps the roles ("" when it does not)."""
    unused: tuple[int, ...] = ()
    """SMT siblings of the proxy's CPUs, left idle."""

    def proxy_cores(self, workers: int) -> tuple[int, ...]:
        """The cores of a step with ``workers`` workers: the first ``workers`` proxy cores."""
        if not 1 <= workers <= len(self.proxy):
            raise ValueError(f"{workers} workers, but the proxy has {len(self.proxy)} cores")
        return self.proxy[:workers]

    def describe(self) -> str:
        """One line: where each role runs, and whether the figures mean scaling."""
        where = (f"proxy on cores {cpu_list(self.proxy)}, backends on {cpu_list(self.backends)}, "
                 f"h2load on {cpu_list(self.loadgen)}")
        if self.unused:
            where += f", SMT siblings {cpu_list(self.unused)} idle"
        if self.overlapped:
            return (f"OVERLAPPED: {self.reason} ({where}); these figures measure contention, "
                    f"NOT scaling")
        return f"separate cores: {where}"


def cpu_list(cores: Iterable[int]) -> str:
    """``taskset -c`` form: ``0,1,2``."""
    return ",".join(str(core) for core in cores)


def parse_cpu_list(text: str) -> frozenset[int]:
    """The kernel's list form (``0-3,8,10-11``) as a set."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


def read_siblings(cpus: Iterable[int]) -> dict[int, frozenset[int]]:
    """Each CPU's SMT siblings (itself included) from sysfs; a CPU whose file cannot be read
    is left out (it then counts as a physical core of its own)."""
    siblings = {}
    for cpu in cpus:
        try:
            text = (SYSFS_CPU / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text()
        except (OSError, ValueError):
            continue
        siblings[cpu] = parse_cpu_list(text)
    return siblings


def physical_cores(cpus: Iterable[int],
                   siblings: Mapping[int, Iterable[int]]) -> list[tuple[int, ...]]:
    """The usable ``cpus`` grouped by physical core, each group ascending, groups by their
    first CPU; a CPU missing from ``siblings`` is a core of its own."""
    usable = set(cpus)
    groups = {tuple(sorted(usable & {cpu, *siblings.get(cpu, ())})) for cpu in usable}
    return sorted(groups)


def worker_counts(cores: int, max_workers: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, ... up to ``cores`` (plus ``cores`` itself), none above ``max_workers``."""
    top = cores if max_workers is None else min(cores, max_workers)
    counts: list[int] = []
    count = 1
    while count <= top:
        counts.append(count)
        count *= 2
    if top >= 1 and counts[-1] != top:
        counts.append(top)
    return tuple(counts)


def _split(units: int) -> tuple[int, int]:
    """(proxy, quarter): how many of ``units`` (>= 3) the proxy gets, and the backends and the
    load generator each."""
    quarter = max(1, units // 4)
    return units - 2 * quarter, quarter


def plan_cores(cpus: Iterable[int], *, max_workers: int | None = None,
               siblings: Mapping[int, Iterable[int]] | None = None) -> CorePlan:
    """The plan for these usable CPUs (``os.sched_getaffinity(0)``) and their SMT
    ``siblings`` (``read_siblings``; None or {}: every CPU a physical core of its own)."""
    cores = tuple(sorted(set(cpus)))
    if not cores:
        raise ValueError("no usable CPU")
    if max_workers is not None and max_workers < 1:
        raise ValueError(f"max_workers {max_workers} < 1")
    groups = physical_cores(cores, siblings or {})
    if len(groups) >= MIN_SEPARATE:
        proxy, quarter = _split(len(groups))
        return CorePlan(
            proxy=tuple(group[0] for group in groups[:proxy]),
            backends=tuple(cpu for group in groups[proxy:proxy + quarter] for cpu in group),
            loadgen=tuple(cpu for group in groups[proxy + quarter:] for cpu in group),
            worker_counts=worker_counts(proxy, max_workers), overlapped=False,
            unused=tuple(cpu for group in groups[:proxy] for cpu in group[1:]))
    if len(cores) < MIN_SEPARATE:
        return CorePlan(proxy=cores, backends=cores, loadgen=cores,
                        worker_counts=worker_counts(len(cores), max_workers), overlapped=True,
                        reason=f"only {len(cores)} core(s), so every role shares them")
    proxy, quarter = _split(len(cores))
    return CorePlan(proxy=cores[:proxy], backends=cores[proxy:proxy + quarter],
                    loadgen=cores[proxy + quarter:],
                    worker_counts=worker_counts(proxy, max_workers), overlapped=True,
                    reason=f"{len(cores)} CPUs on only {len(groups)} physical core(s), so the "
                           f"roles share physical cores (SMT siblings)")
