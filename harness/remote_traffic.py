"""`harness.traffic.ThreadLoad` in a process of its own, e.g. inside a network namespace.

    ip netns exec NS python -m harness.remote_traffic --address HOST:PORT [--once]
        [--threads 1] [--channels-per-thread 2] [--interval 0.01] [--failure-pause 0.005]
        [--max-seconds 120] [--max-calls N]

Why: grpcio connects from its own threads, which stay in the namespace the process started in,
so calls into a namespace must come from a process started there. The child runs Whoami calls
(`harness.whoami`) on channels of their own and writes every outcome as one JSON
line on stdout (`harness.traffic.Outcome.to_json`), in the order they were recorded::

    {"started": <CLOCK_MONOTONIC s>, "ended": <s>, "connection": 0, "code": "OK",
     "backend": "a" | null, "error": "CODE: details"}

The monotonic clock is system-wide (network namespaces do not touch it), so these times compare
with the parent's ``time.monotonic()``. ``--once`` makes one call and exits 0; otherwise the
child stops when its stdin closes, on SIGTERM, or after its bounds (``--max-seconds``,
``--max-calls``); its calls in flight end within `harness.traffic.CALL_TIMEOUT`.

`RemoteLoad` is the parent's side: it starts the child in its own session through a command
prefix (such as ``ip netns exec NS``), records its lines in its log on a reader thread,
and stops it by closing stdin, a bounded wait, then SIGKILL to the child's group. `call_once`
runs a ``--once`` child to completion.

Concurrency: the child's load threads write lines under the log's lock; a daemon thread notices
stdin EOF and sets an event. In the parent one reader thread per child records outcomes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from harness.traffic import (
    FAILED_CALL_PAUSE,
    JOIN_TIMEOUT,
    Outcome,
    RunningLoad,
    ThreadLoad,
    make_call,
)
from harness.whoami import private_channels, whoami

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = JOIN_TIMEOUT + 5.0
"""Seconds the child may take to stop after its stdin closes (its calls in flight end first)."""
ONCE_TIMEOUT = 30.0
"""Seconds a ``--once`` child may take (interpreter and grpc import, one bounded call)."""
MODULE = "harness.remote_traffic"
DONE_POLL_INTERVAL = 0.2
"""Seconds between the child's checks that its load ended by its own bounds."""


def build_argv(
    address: str,
    *,
    threads: int = 1,
    channels_per_thread: int = 2,
    interval: float = 0.0,
    failure_pause: float = FAILED_CALL_PAUSE,
    max_seconds: float = 120.0,
    once: bool = False,
) -> list[str]:
    """The child's command line (without a prefix)."""
    argv = [
        sys.executable, "-m", MODULE,
        "--address", address,
        "--threads", str(threads),
        "--channels-per-thread", str(channels_per_thread),
        "--interval", str(interval),
        "--failure-pause", str(failure_pause),
        "--max-seconds", str(max_seconds),
    ]  # fmt: skip
    return [*argv, "--once"] if once else argv


class RemoteLoad(RunningLoad):
    """A running child and the outcomes it reported so far."""

    def __init__(
        self,
        address: str,
        *,
        command_prefix: Sequence[str],
        log_path: Path,
        threads: int = 1,
        channels_per_thread: int = 2,
        interval: float = 0.0,
        failure_pause: float = FAILED_CALL_PAUSE,
        max_seconds: float = 120.0,
    ) -> None:
        super().__init__()
        self.address = address
        argv = build_argv(
            address,
            threads=threads,
            channels_per_thread=channels_per_thread,
            interval=interval,
            failure_pause=failure_pause,
            max_seconds=max_seconds,
        )
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command_prefix, *argv],
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
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.record(Outcome.from_json(line))

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

    def summary(self, since: float = 0.0) -> str:
        return f"load {self.address}: {super().summary(since)}"


def call_once(address: str, *, command_prefix: Sequence[str]) -> Outcome:
    """One Whoami call from a fresh child (through `command_prefix`), as an `Outcome`."""
    result = subprocess.run(
        [*command_prefix, *build_argv(address, once=True)],
        cwd=REPO,
        capture_output=True,
        timeout=ONCE_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"caller failed ({result.returncode}): {result.stderr.decode()}")
    return Outcome.from_json(result.stdout)


def write(outcome: Outcome) -> None:
    sys.stdout.write(outcome.to_json() + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--address", required=True)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels-per-thread", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--failure-pause", type=float, default=FAILED_CALL_PAUSE)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--max-calls", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    open_channel = private_channels(args.address)
    if args.once:
        with open_channel() as channel:
            write(make_call(whoami, channel, connection=0))
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
    with ThreadLoad(
        open_channel,
        whoami,
        threads=args.threads,
        channels_per_thread=args.channels_per_thread,
        interval=args.interval,
        failure_pause=args.failure_pause,
        max_calls=args.max_calls,
        max_seconds=args.max_seconds,
        on_outcome=write,
    ) as load:
        deadline = time.monotonic() + args.max_seconds + JOIN_TIMEOUT
        while time.monotonic() < deadline and not load.wait_done(0.0):
            if stop.wait(DONE_POLL_INTERVAL):
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
