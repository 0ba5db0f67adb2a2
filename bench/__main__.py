"""``python -m bench QUESTION [OPTIONS]``: the one entry point of the benchmarks.

Each question is a subpackage (or, for ``profile``, a module of ``cost``) with a
``main(argv) -> int``; this module only picks it by name and hands it the rest of the command
line, so ``python -m bench QUESTION --help`` is the question's own help. Questions are imported
only when asked (``cost`` pulls in matplotlib, ``discovery-k8s`` the Kubernetes harness).
Results go to ``bench/results/QUESTION/<run id>/`` (``bench.results``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple


class Question(NamedTuple):
    module: str
    summary: str


QUESTIONS = {
    "cost": Question("bench.cost.main", "what a call costs through gproxy-mp vs direct, "
                     "nginx and HAProxy (calls/s, CPU, latency)"),
    "profile": Question("bench.cost.profile", "where a worker spends its CPU under h2load "
                        "(py-spy), by frame and by layer"),
    "discovery": Question("bench.discovery.dns", "how fast a DNS change reaches traffic, "
                          "against grpc's own resolver"),
    "discovery-k8s": Question("bench.discovery.kubernetes", "how fast an EndpointSlice change "
                              "reaches traffic (needs root)"),
    "discovery-cluster": Question("bench.discovery.cluster", "how fast a rolling update "
                                  "reaches traffic, real controllers (needs root)"),
    "scale": Question("bench.scale.main", "memory and start-up under load, with many "
                      "endpoints and many routes"),
    "balance": Question("bench.balance.main", "round robin against least-request with one "
                        "backend ten times slower (latency, share per backend)"),
    "locality": Question("bench.balance.locality", "where calls go with each Service "
                         "trafficDistribution, real controllers (needs root)"),
    "connections": Question("bench.connections.main", "how calls split over workers, "
                            "with and without --max-connection-age"),
    "scaling": Question("bench.scaling.main", "calls/s and CPU per call at 1, 2, 4, ... "
                        "workers on pinned cores, beside nginx (and the Go gproxy)"),
}
"""Every question, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:14} {question.summary}" for name, question in QUESTIONS.items())
    return argparse.ArgumentParser(
        prog="python -m bench", usage="python -m bench QUESTION [OPTIONS]",
        description="gproxy-mp's benchmarks, one per question.",
        epilog=f"questions:\n{listing}\n\n`python -m bench QUESTION --help` shows the "
               "question's options; `--smoke` runs it briefly (CI).",
        formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in QUESTIONS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown question {argv[0]!r}; one of: {', '.join(QUESTIONS)}")
        parser.print_help()
        return 0 if argv else 2
    run: Callable[[list[str]], int] = importlib.import_module(QUESTIONS[argv[0]].module).main
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
