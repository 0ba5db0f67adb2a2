"""Start and always stop the interop tier's own processes: ``tests.interop.backend`` servers.

Each runs in its own session with a stdin pipe (it stops when the pipe closes, so a killed test
run leaves nothing behind); teardown is SIGTERM to its group, a bounded wait, then SIGKILL.
The proxy itself is started with ``tests.support.processes.Proxy``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.processes import (
    BACKEND_START_TIMEOUT,
    BACKEND_STOP_TIMEOUT,
    REPO,
    read_line,
    signal_group,
)


class EchoBackend:
    """A running ``python -m tests.interop.backend``."""

    def __init__(self, name: str, *, log_dir: Path, args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.log_path = log_dir / f"interop-backend-{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.interop.backend", "--name", name, *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        try:
            line = read_line(self.process.stdout, timeout=BACKEND_START_TIMEOUT)
        except TimeoutError:
            self.stop()
            raise
        if not line.startswith(b"PORT "):
            self.stop()
            raise RuntimeError(f"backend {name} did not announce a port: {line!r}\n"
                               f"{self.output()}")
        self.port = int(line.split()[1])
        self.address = f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return f"--- backend {self.name}\n{self.log_path.read_text(errors='replace')}"

    def stop(self) -> None:
        """SIGTERM the group, wait, then SIGKILL; close the pipes and the log."""
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=BACKEND_STOP_TIMEOUT)
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=BACKEND_STOP_TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()
