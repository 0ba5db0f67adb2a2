"""Where a gproxy-mp worker spends its CPU: py-spy of one worker while h2load drives it.

    .venv/bin/python -m bench profile [--seconds 10] [--workers 1] [--workload unary-100B]

Starts the nginx backends and gproxy-mp (as ``bench cost`` does), checks the path with grpcio,
starts h2load (8 connections x 16 streams, bounded in calls and time) and, while it runs,
``py-spy record --native -f raw`` on the first worker for ``--seconds``. Then it stops h2load
and every peer (by pid) and prints the frames with the most own samples (the leaf of each
stack), the share of samples by layer of the leaf frame (where the CPU went) and by the
innermost Python frame (whose work it was: the proxy's code, grpc's Python layer, asyncio).

Shares are of busy samples of all threads: py-spy leaves idle threads out, and the blocking
waits it misses with --native (``epoll_wait`` and the like) are counted apart.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cost.main import check
from bench.results import RunResults, add_results_argument
from bench.rig.peers import ensure_tools, start_peers
from bench.rig.workloads import BY_NAME, write_backend_files, write_request_files
from harness import procfacts

LAYERS = (  # first match on the leaf frame wins
    ("system calls and libc", ("(libc.so", "(libpthread")),
    ("grpc native code (cygrpc's .so: Cython and C core, no symbols)", (".so)",)),
    ("proxy's own code (gproxy_mp/)", ("gproxy_mp/",)),
    ("grpc Python layer (grpc/*.py)", ("grpc/",)),
    ("asyncio", ("asyncio/", "selectors.py", "_weakrefset.py", "_asynciomodule.c")),
    ("CPython interpreter", (".c:", ".h:", "libpython", "python3")),
)
"""Leaf frames of native code name their library, ``fn (libc.so.6)``, or C source, ``fn
(object.h:537)``; Python frames name their file, ``fn (path.py:LINE)``."""
WAITS = ("epoll_wait", "epoll_pwait", "poll (", "select (", "pthread_cond_", "sem_wait",
         "nanosleep", "futex_wait")
"""Leaf frames that are a thread blocked, not CPU: py-spy's idle filter misses them with
--native, so they are counted apart."""
PYTHON_FRAME = re.compile(r"\((?:[^()]+\.py|<frozen [^>]+>):\d+\)$")
CALLERS = (("gproxy_mp/", "proxy's own code (gproxy_mp/)"), ("grpc/", "grpc Python layer"),
           ("asyncio/", "asyncio"), ("", "other Python"))
TOP = 20
"""Frames listed by own samples."""


def classify(frame: str) -> str:
    for layer, needles in LAYERS:
        if any(needle in frame for needle in needles):
            return layer
    return "other"


def caller(stack: list[str]) -> str:
    """Which Python code the sample is working for: its innermost Python frame."""
    for frame in reversed(stack):
        if PYTHON_FRAME.search(frame):
            return next(name for prefix, name in CALLERS if prefix in frame)
    return "no Python frame (grpc's own threads)"


def shares(counter: collections.Counter[str], total: int) -> list[str]:
    return [f"  {100 * n / total:5.1f}%  {key[:150]}" for key, n in counter.most_common(TOP)]


def summarize(raw: str) -> list[str]:
    """py-spy raw lines ``root;...;leaf COUNT`` -> report lines."""
    leaves: collections.Counter[str] = collections.Counter()
    callers: collections.Counter[str] = collections.Counter()
    waiting = 0
    for line in raw.splitlines():
        text, _, samples = line.rpartition(" ")
        if not text or not samples.isdigit():
            continue
        stack = text.split(";")
        if any(wait in stack[-1] for wait in WAITS):
            waiting += int(samples)
            continue
        leaves[stack[-1]] += int(samples)
        callers[caller(stack)] += int(samples)
    total = sum(leaves.values()) or 1
    layers: collections.Counter[str] = collections.Counter()
    for frame, count in leaves.items():
        layers[classify(frame)] += count
    return [f"{total} busy samples ({waiting} more blocked in waits, left out)",
            "by layer of the leaf frame (where the CPU went):", *shares(layers, total),
            "by innermost Python frame (whose work it was):", *shares(callers, total),
            f"top {TOP} leaf frames:", *shares(leaves, total)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--workload", choices=[n for n, w in BY_NAME.items()
                                               if not w.streaming], default="unary-100B")
    parser.add_argument("--smoke", action="store_true",
                        help="2 s of sampling: a check that profiling works")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = 2
    ensure_tools(["nginx", "h2load"])
    py_spy = Path(sys.executable).with_name("py-spy")
    workload = BY_NAME[args.workload]
    with tempfile.TemporaryDirectory(prefix="gproxy-profile-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        write_backend_files(work / "www")
        body = write_request_files(work)[workload.name]
        backends, (config,) = start_peers(work, [f"gproxy-w{args.workers}"], backend_count=2)
        assert config.proxy is not None
        load: subprocess.Popen[bytes] | None = None
        try:
            failed = {w: why for w, why in check(config).items() if why != "ok"}
            if failed:
                print(f"check failed: {failed}", file=sys.stderr)
                return 1
            root = config.proxy.processes[0].pid
            worker = next(pid for pid in config.proxy.pids() if pid != root
                          and "gproxy_mp.worker" in procfacts.command_line(pid))
            calls = (args.seconds + 30) * 10_000  # more than it can do in the time
            load = subprocess.Popen(
                ["h2load", "-n", str(calls), "-c", "8", "-m", "16", "-t", "1",
                 "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body),
                 f"http://{config.address}{workload.method}"], stdout=subprocess.DEVNULL)
            time.sleep(1)  # past connection set-up
            out = work / "profile.txt"
            subprocess.run([str(py_spy), "record", "--native", "-p", str(worker), "-d",
                            str(args.seconds), "-f", "raw", "-o", str(out)], check=True,
                           timeout=args.seconds + 60, capture_output=True)
        finally:
            if load is not None:
                load.terminate()
                load.wait(timeout=10)
            for group in (config.proxy, backends):
                group.stop()
        print(f"py-spy --native, gproxy-mp --workers {args.workers} worker {worker}, "
              f"{args.workload}, {args.seconds} s under h2load -c 8 -m 16")
        print("\n".join(summarize(out.read_text())))
        RunResults("profile", results_dir=args.results_dir).keep(out, "py-spy.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
