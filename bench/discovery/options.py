"""What the two discovery benchmarks (DNS and Kubernetes) do alike around their measurement.

A scratch directory kept only when the run fails, and the command-line tail (``--smoke``
presets, a random ``--seed`` when none is given, ``--results-dir``), and the keys both results
open with. The result is written by ``bench.results``, its environment comes from
``bench.environment``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.discovery.changes import QUIET
from bench.results import add_results_argument
from gproxy_mp.config import parse_duration
from gproxy_mp.errors import ConfigError


def add_run_arguments(parser: argparse.ArgumentParser, *, smoke_help: str) -> None:
    """``--seed``, ``--results-dir`` and ``--smoke``: the options every discovery run has."""
    parser.add_argument("--seed", type=int, default=None, help="seed of the pauses")
    add_results_argument(parser)
    parser.add_argument("--smoke", action="store_true", help=smoke_help)


def parse_durations(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """Turn the DURATION options ``names`` into seconds; a bad one is a usage error."""
    try:
        for name in names:
            setattr(args, name, parse_duration(getattr(args, name)))
    except ConfigError as error:
        parser.error(str(error))


def finish_args(args: argparse.Namespace, *, smoke: Mapping[str, object]) -> None:
    """Apply the ``--smoke`` presets, and draw a seed when ``--seed`` was not given."""
    if args.smoke:
        vars(args).update(smoke)
    if args.seed is None:
        args.seed = random.randrange(2**32)


@contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A fresh temporary directory, removed after a successful run and kept (its path printed)
    for the logs after a failed one."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    except BaseException:
        print(f"logs kept in {directory}", file=sys.stderr)
        raise
    shutil.rmtree(directory)


def result_head(benchmark: str, args: argparse.Namespace, *, run_id: str, hosts: Sequence[str],
                connections: int, call_interval: float, settings: Mapping[str, object],
                environment: Mapping[str, object]) -> dict[str, Any]:
    """The keys both discovery results open with: ``benchmark``, ``started``, ``settings``
    (those both record, then the benchmark's own ``settings``) and ``environment``."""
    return {
        "benchmark": benchmark,
        "started": run_id,
        "settings": {
            "changes": args.changes,
            "connections": connections,
            "call_interval_s": call_interval,
            "quiet_s": QUIET,
            "hosts": list(hosts),
            "seed": args.seed,
            "smoke": args.smoke,
            **settings,
        },
        "environment": environment,
    }
