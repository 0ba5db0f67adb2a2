"""What the two discovery benchmarks (DNS and Kubernetes) do alike around their measurement.

A scratch directory kept only when the run fails, the command-line tail (``--smoke`` presets,
a random ``--seed`` when none is given), the environment a result records, and writing the
result as JSON under ``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import grpc

from gproxy_mp.config import parse_duration
from gproxy_mp.errors import ConfigError
from harness.testbin import REPO


def add_run_arguments(parser: argparse.ArgumentParser, *, smoke_help: str) -> None:
    """``--seed``, ``--results-dir`` and ``--smoke``: the options every discovery run has."""
    parser.add_argument("--seed", type=int, default=None, help="seed of the pauses")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
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


def started_at() -> str:
    """The run's start time as it names the result file."""
    return time.strftime("%Y%m%dT%H%M%S")


def environment(**extra: str) -> dict[str, Any]:
    """Versions and CPUs of this run; ``extra`` adds e.g. the Kubernetes version."""
    return {
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
        "gproxy_mp": version("gproxy-mp"),
        **extra,
        "cpus": os.cpu_count(),
    }


def write_result(result: Mapping[str, Any], *, results_dir: Path) -> Path:
    """``<results_dir>/<benchmark>-<started>.json``; prints and returns the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{result['benchmark']}-{result['started']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path
