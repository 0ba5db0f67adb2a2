"""Where every benchmark's results go, and the one way they are written.

A run of question Q (``python -m bench Q``) writes into ``bench/results/Q/<run id>/``
(git-ignored; ``--results-dir DIR`` puts ``DIR/Q/<run id>/`` instead):

| file | what |
|---|---|
| ``result.json`` | the question's whole result (settings, samples, summaries), indented JSON |
| ``chart.png`` | the chart, where the question draws one (``cost``) |
| any other name | a raw file the run keeps (``profile``: py-spy's samples) |

The run id is the local start time, ``YYYYMMDD-HHMMSS``; it is also the ``started`` value a
result records. The directory is created on the first write, so a run that fails before it has
anything to write leaves nothing behind. Each write prints ``wrote PATH`` on stdout (the smoke
tests look for the path there). Single-threaded; nothing here measures anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.processes import REPO

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS = REPO / "bench" / "results"
"""Default parent of every question's results (git-ignored)."""
CHART_DPI = 110


def new_run_id() -> str:
    """The run id of a run starting now."""
    return time.strftime("%Y%m%d-%H%M%S")


def add_results_argument(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """``--results-dir DIR`` (and ``aliases``, e.g. the older ``--out``)."""
    parser.add_argument("--results-dir", *aliases, dest="results_dir", type=Path,
                        default=RESULTS, metavar="DIR",
                        help="results go to DIR/<question>/<run id>/ (default bench/results)")


class RunResults:
    """One run's results directory: ``<results_dir>/<question>/<run id>/``."""

    def __init__(self, question: str, *, results_dir: Path = RESULTS,
                 run_id: str | None = None) -> None:
        self.question = question
        self.run_id = run_id or new_run_id()
        self.directory = results_dir / question / self.run_id

    def path(self, name: str) -> Path:
        """The path of file ``name`` in the run's directory (created if missing)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / name

    def write_json(self, document: Mapping[str, Any], name: str = "result.json") -> Path:
        """Write ``document`` as indented JSON; print and return its path."""
        path = self.path(name)
        path.write_text(json.dumps(document, indent=2) + "\n")
        return _written(path)

    def write_chart(self, figure: Figure, name: str = "chart.png") -> Path:
        """Save ``figure`` (a bare ``Figure``, not pyplot's) as a PNG; print and return its
        path."""
        path = self.path(name)
        figure.savefig(path, dpi=CHART_DPI)
        return _written(path)

    def keep(self, source: Path, name: str) -> Path:
        """Copy a raw file the run produced elsewhere; print and return its path."""
        path = self.path(name)
        shutil.copyfile(source, path)
        return _written(path)


def _written(path: Path) -> Path:
    print(f"wrote {path}", flush=True)
    return path
