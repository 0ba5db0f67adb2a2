"""The discovery benchmark's Whoami load in a process of its own, e.g. inside a network namespace.

    ip netns exec NS python -m bench.discovery_remote --target HOST:PORT \\
        [--connections 4] [--call-interval 0.002] [--max-seconds 300]

Why: grpcio connects from its own threads, which stay in the namespace the process started in
(see `tests.kubernetes.netns`), so calls into a namespace must come from a process started
there. The child runs `bench.discovery_load.WhoamiLoad` and writes every call as one JSON line
on stdout, in the order they were recorded::

    {"started": <CLOCK_MONOTONIC s>, "ended": <s>, "connection": 0, "backend": "10.213.7.11" | null,
     "error": "CODE: details"}

The monotonic clock is system-wide (network namespaces do not touch it), so these times compare
with the parent's `time.monotonic()`. The child stops when its stdin closes, on SIGTERM, or after
`--max-seconds`; its calls in flight end within `discovery_load.CALL_TIMEOUT`.

`RemoteLoad` is the parent's side: it starts the child (in its own session, through a command
prefix such as `ip netns exec NS`), feeds its lines into a `CallLog` on a reader thread, and stops
it by closing stdin, a bounded wait, then SIGKILL to the child's group.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from bench.discovery_load import JOIN_TIMEOUT, Call, CallLog, WhoamiLoad, open_plain
from harness.processes import REPO

STOP_TIMEOUT = JOIN_TIMEOUT + 5.0
"""Seconds the child may take to stop after its stdin closes (its calls in flight end first)."""


class RemoteLoad(CallLog):
    """A running `python -m bench.discovery_remote` child and the calls it reported so far."""

    def __init__(
        self,
        target: str,
        *,
        command_prefix: Sequence[str],
        connections: int,
        call_interval: float,
        max_seconds: float,
        log_path: Path,
    ) -> None:
        super().__init__()
        argv = [
            *command_prefix,
            sys.executable, "-m", "bench.discovery_remote",
            "--target", target,
            "--connections", str(connections),
            "--call-interval", str(call_interval),
            "--max-seconds", str(max_seconds),
        ]  # fmt: skip
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.PIPE,  # closing it ends the load
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.process.stdout,), name="remote-load", daemon=True
        )

    def __enter__(self) -> RemoteLoad:
        self._reader.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.record(Call(**json.loads(line)))

    def stop(self) -> None:
        """Close stdin, wait a bounded time, then SIGKILL the group; every line is read."""
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the load exited with {self.process.returncode}:\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery_remote")
    parser.add_argument("--target", required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--call-interval", type=float, default=0.002)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop.set()

    def write(call: Call) -> None:
        sys.stdout.write(json.dumps(dataclasses.asdict(call)) + "\n")
        sys.stdout.flush()

    signal.signal(signal.SIGTERM, on_signal)
    threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
    with WhoamiLoad(
        open_plain(args.target),
        connections=args.connections,
        call_interval=args.call_interval,
        max_seconds=args.max_seconds,
        on_call=write,
    ):
        stop.wait(args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
