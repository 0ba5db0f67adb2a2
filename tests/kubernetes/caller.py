"""A gRPC client process for the Kubernetes tier, run inside its network namespace.

    ip netns exec NS python -m tests.kubernetes.caller --address HOST:PORT [--once]

pytest cannot make gRPC calls into the namespace itself (grpcio connects from its own threads,
which stay in the root namespace), so this process makes them and reports each outcome as one
JSON line on stdout::

    {"at": <CLOCK_MONOTONIC seconds>, "name": "<backend>" | null, "error": "CODE: details"}

``at`` is comparable with ``time.monotonic()`` in pytest: the monotonic clock is system-wide
and not namespaced by network namespaces.

Modes: ``--once`` makes one Whoami call and exits 0; otherwise it calls Whoami one call after
another, round robin over ``--channels`` channels, until its stdin closes (pytest closes it,
or dies), ``--max-seconds`` pass, or SIGTERM.

Concurrency: a single thread; stdin EOF is noticed by a daemon thread that sets an event.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from types import FrameType

import grpc

from harness import client

CALL_TIMEOUT = 5.0
"""Seconds one call may take; a proxy that keeps a call waiting this long has failed it."""
INTERVAL = 0.01
"""Seconds between calls: about 100 calls/s leaves the 2 CPUs to the proxy and the API server."""


def call_once(channel: grpc.Channel) -> dict[str, object]:
    try:
        name: str | None = client.whoami(channel, timeout=CALL_TIMEOUT)
        error = ""
    except grpc.RpcError as failure:
        name, error = None, client.describe(failure)
    return {"at": time.monotonic(), "name": name, "error": error}


def report(outcome: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(outcome) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubernetes.caller")
    parser.add_argument("--address", required=True)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop.set()

    channels = [client.open_channel(args.address) for _ in range(args.channels)]
    try:
        if args.once:
            report(call_once(channels[0]))
            return 0
        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
        deadline = time.monotonic() + args.max_seconds
        index = 0
        while not stop.is_set() and time.monotonic() < deadline:
            report(call_once(channels[index % len(channels)]))
            index += 1
            stop.wait(args.interval)
        return 0
    finally:
        for channel in channels:
            channel.close()


if __name__ == "__main__":
    sys.exit(main())
