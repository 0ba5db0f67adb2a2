"""Small-unary throughput through gproxy-mp, side by side with direct calls (kept for its usage).

    .venv/bin/python bench/unary_ratio.py [--rounds 3] [--calls 20000] [--workers 1]

Now a shortcut for the full harness, ``bench/run.py``, restricted to the small unary workload
and two configurations (direct to the nginx backend, gproxy-mp with ``--workers N``, N = 1 or
2), with the same method: nginx fixed-response backends, h2load 8 connections x 16 streams,
interleaved rounds, the proxy's CPU time per call from /proc, and a real gRPC check of each
path first. It prints the harness's table and writes its JSON and PNG to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/unary_ratio.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    return run.main(["--rounds", str(args.rounds), "--calls", str(args.calls),
                     "--workloads", "unary-100B", "--configs", f"direct,gproxy-w{args.workers}"])


if __name__ == "__main__":
    sys.exit(main())
