"""The import boundaries hold: checked by import-linter, and by what an import really loads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 60.0
"""Seconds a checking subprocess may take."""


def lint_imports() -> str:
    beside_python = Path(sys.executable).parent / "lint-imports"
    found = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed (pip install -e '.[test]')"
    return found


def test_the_import_contracts_are_kept() -> None:
    result = subprocess.run([lint_imports()], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_supervisor_side_never_loads_grpc() -> None:
    probe = ("import sys, gproxy_mp.cli, gproxy_mp.supervisor.main\n"
             "loaded = sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.'))\n"
             "print(loaded)\n"
             "sys.exit(1 if loaded else 0)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def loaded_after(imports: str, prefixes: tuple[str, ...]) -> list[str]:
    probe = (f"import sys, {imports}\n"
             f"print(sorted(m for m in sys.modules if m.startswith({prefixes!r})))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT, check=True)
    return [m.strip("' ") for m in result.stdout.strip().strip("[]").split(",") if m.strip()]


def test_the_native_plane_worker_never_loads_grpc() -> None:
    loaded = loaded_after("gproxy_mp.worker.main, gproxy_mp.worker.planes.native",
                          ("grpc",))
    assert loaded == [], loaded


def test_the_supervisor_side_never_loads_the_native_engine() -> None:
    loaded = loaded_after("gproxy_mp.cli, gproxy_mp.supervisor.main",
                          ("gproxy_mp._native", "gproxy_mp.worker.planes"))
    assert loaded == [], loaded


IMPORTS_ENGINE = re.compile(r"^\s*(from gproxy_mp\._native |from gproxy_mp import .*_native|"
                            r"import gproxy_mp\._native)", re.MULTILINE)


def test_only_the_native_plane_imports_the_engine() -> None:
    """import-linter cannot see an extension module, so the one importer is checked here."""
    importers = sorted(str(path.relative_to(REPO_ROOT))
                       for path in (REPO_ROOT / "gproxy_mp").rglob("*.py")
                       if IMPORTS_ENGINE.search(path.read_text()))
    assert importers == ["gproxy_mp/worker/planes/native.py"]
