"""Which cores each role of ``python -m bench scaling`` runs on, and which worker counts it tries.

Pure: plain data in, plain data out. From the CPUs this process may use
(``os.sched_getaffinity(0)``), in ascending order:

- the **proxy under test** gets the first cores, all that the two roles below leave (about
  half); a step with N workers uses the first N of these;
- the **backends** (fixed-response nginx, one worker each) get a quarter (at least one);
- the **load generator** (h2load, one thread per core) gets the last quarter (at least one).

So 4 cores split 2/1/1, 8 cores 4/2/2, 16 cores 8/4/4, 64 cores 32/16/16. Worker counts are
1, 2, 4, 8, ... up to the proxy's cores (and that count itself when it is not a power of two),
capped at ``max_workers``.

With fewer than 3 usable cores no role can have cores of its own: the plan is then
*overlapped*, every role runs on every core and the proxy's steps still go up to all cores.
Such a run exercises the command but measures contention, not scaling; ``describe`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MIN_SEPARATE = 3
"""Fewest cores on which the proxy, the backends and the load generator get cores of their
own."""


@dataclass(frozen=True)
class CorePlan:
    proxy: tuple[int, ...]
    backends: tuple[int, ...]
    loadgen: tuple[int, ...]
    worker_counts: tuple[int, ...]
    overlapped: bool

    def proxy_cores(self, workers: int) -> tuple[int, ...]:
        """The cores of a step with ``workers`` workers: the first ``workers`` proxy cores."""
        if not 1 <= workers <= len(self.proxy):
            raise ValueError(f"{workers} workers, but the proxy has {len(self.proxy)} cores")
        return self.proxy[:workers]

    def describe(self) -> str:
        """One line: where each role runs, and whether the figures mean scaling."""
        where = (f"proxy on cores {cpu_list(self.proxy)}, backends on {cpu_list(self.backends)}, "
                 f"h2load on {cpu_list(self.loadgen)}")
        if self.overlapped:
            return (f"OVERLAPPED: only {len(self.proxy)} core(s), so every role shares them "
                    f"({where}); these figures measure contention, NOT scaling")
        return f"separate cores: {where}"


def cpu_list(cores: Iterable[int]) -> str:
    """``taskset -c`` form: ``0,1,2``."""
    return ",".join(str(core) for core in cores)


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


def plan_cores(cpus: Iterable[int], *, max_workers: int | None = None) -> CorePlan:
    """The plan for these usable CPUs (``os.sched_getaffinity(0)``)."""
    cores = tuple(sorted(set(cpus)))
    if not cores:
        raise ValueError("no usable CPU")
    if max_workers is not None and max_workers < 1:
        raise ValueError(f"max_workers {max_workers} < 1")
    if len(cores) < MIN_SEPARATE:
        return CorePlan(proxy=cores, backends=cores, loadgen=cores,
                        worker_counts=worker_counts(len(cores), max_workers), overlapped=True)
    quarter = max(1, len(cores) // 4)
    proxy = cores[:len(cores) - 2 * quarter]
    return CorePlan(proxy=proxy, backends=cores[len(proxy):len(proxy) + quarter],
                    loadgen=cores[len(proxy) + quarter:],
                    worker_counts=worker_counts(len(proxy), max_workers), overlapped=False)
