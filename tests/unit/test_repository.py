"""The repository carries no path of anyone's machine.

Commands in the docs and comments name paths a reader has (`.venv/bin/python`, a placeholder
such as `GO_GPROXY`, `/tmp/...`), never the directories of the machine where a figure was
measured: a newcomer cannot follow those. Tracked text files only (`git ls-files`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home/[\w.-]+|Users/[\w.-]+|root)/[\w.-]+")
"""A developer's working directories: /work/..., /home/NAME/..., /Users/NAME/..., /root/...;
not /workspace or the like, and not a path inside a URL (preceded by a host name)."""
ALLOWED = {"tests/unit/test_repository.py"}


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                            check=True, timeout=30).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and name not in ALLOWED]


def test_no_tracked_file_names_a_path_of_a_developers_machine() -> None:
    found: list[str] = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue  # binary files (images), submodules, files deleted but not yet staged
        for number, line in enumerate(text.splitlines(), 1):
            if match := MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    assert found == [], "\n".join(found)
