"""Other Python interpreters for gproxy-mp, to measure it on each in one run.

``bench cost --python NAME=INTERPRETER`` runs gproxy-mp (one worker) with INTERPRETER as a
configuration of its own. gproxy-mp and its dependencies must be importable there, so each
interpreter gets a virtualenv of its own under ``.cache/bench-python/`` (git-ignored), with
gproxy-mp installed editable from this tree: the same code as the main venv runs, on another
CPython. It is made once, and again when pyproject.toml changes (a stamp holds its hash).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from harness.processes import REPO

VENVS = REPO / ".cache" / "bench-python"
INSTALL_TIMEOUT = 900.0
"""Seconds pip may take to install gproxy-mp's dependencies (wheels) into a new venv."""


class PythonError(RuntimeError):
    """An interpreter that cannot run gproxy-mp here: one line saying why."""


def version_of(interpreter: str) -> str:
    """``3.13.0`` for an interpreter path or name on PATH; PythonError if it does not run."""
    path = shutil.which(interpreter)
    if path is None:
        raise PythonError(f"{interpreter}: not found")
    done = subprocess.run([path, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise PythonError(f"{interpreter}: does not run ({done.stderr.strip()[-200:]})")
    return done.stdout.strip()


def ensure_venv(interpreter: str) -> Path:
    """The python of a venv on `interpreter` with gproxy-mp installed; made when missing or
    when pyproject.toml has changed since."""
    version = version_of(interpreter)
    venv = VENVS / f"cpython-{version}"
    stamp = venv / ".installed"
    wanted = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if stamp.is_file() and stamp.read_text() == wanted and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[str(shutil.which(interpreter)), "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
             [str(python), "-m", "pip", "install", "--quiet", "-e", str(REPO)]]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=INSTALL_TIMEOUT)
        if done.returncode != 0:
            raise PythonError(f"{interpreter}: {' '.join(argv[1:4])} failed: "
                              f"{done.stderr.strip()[-300:]}")
    stamp.write_text(wanted)
    return python
