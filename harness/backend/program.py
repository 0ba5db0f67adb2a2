"""The backend program: one real grpcio server process with every behaviour the tiers need.

    python -m harness.backend --name NAME [--host 127.0.0.1|::1] [--port 0]
        [--reflection [--declare-unary METHOD]...] [--refuse-all]
        [--max-metadata-size BYTES] [--max-pending-requests N] [--compress-all]
        [--health] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
        [--delay-ms MS] [--stop-on-stdin-eof]

It serves ``test.Echo`` (`harness.backend.echo`) and ``interop.Echo``
(`harness.backend.interop`) on raw bytes with unlimited message sizes, or, with
``--refuse-all``, answers every call UNAVAILABLE (`harness.backend.refusing`). Several
processes may listen on one port at different loopback hosts (``--host``/``--port``), as the
backends behind one DNS name do. It prints exactly one line ``PORT <n>`` once serving and
serves until SIGTERM or SIGINT (or, with ``--stop-on-stdin-eof``, until its stdin closes:
the test process that held the pipe died), then stops with a one-second grace and exits 0.

- ``--reflection``: offer server reflection for ``test.Echo``; ``--declare-unary`` makes it
  claim a streaming method is unary.
- ``--max-metadata-size``: grpc's soft and hard metadata limits (default grpc's own, 8 KiB
  soft / 16 KiB hard).
- ``--max-pending-requests``: calls that may wait for the application (`interop.pending_limits`).
- ``--compress-all``: compress every response with gzip.
- ``--health``: offer gRPC's health service (`harness.backend.health`), SERVING until told
  otherwise with ``harness.Control/SetHealth``.
- ``--delay-ms``: ``test.Echo/Unary`` and ``WhoAmI`` answer this many milliseconds late
  (a slow backend, for balancing).
- ``--tls-cert``/``--tls-key``: serve TLS; with ``--tls-client-ca``, require client
  certificates signed by it (mutual TLS).

Concurrency: one asyncio loop; handlers are coroutines; signal handlers only set an event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from harness.backend import echo, interop, refusing
from harness.backend.health import enable_health
from harness.backend.reflection import enable_reflection
from harness.client import UNLIMITED_MESSAGES

STOP_GRACE = 1.0
"""Seconds in-flight calls get after SIGTERM before the server cancels them."""


@dataclass(frozen=True)
class BackendOptions:
    """What the server does beyond echoing; the defaults are grpc's own behaviour."""

    reflection: Sequence[str] | None = None
    """Offer server reflection, declaring these methods unary on top of the truly unary
    ones; None: no reflection."""
    refuse_all: bool = False
    max_metadata_size: int | None = None
    max_pending_requests: int | None = None
    compress_all: bool = False
    health: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    delay: float = 0.0
    """Seconds ``Unary`` and ``WhoAmI`` wait before answering."""
    extra_options: Sequence[tuple[str, Any]] = field(default_factory=tuple)

    def credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials from the files, or None for plaintext."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        with open(self.tls_key, "rb") as key, open(self.tls_cert, "rb") as cert:
            pair = (key.read(), cert.read())
        client_ca = None
        if self.tls_client_ca is not None:
            with open(self.tls_client_ca, "rb") as ca:
                client_ca = ca.read()
        return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)

    def server_options(self) -> list[tuple[str, Any]]:
        options: list[tuple[str, Any]] = [*UNLIMITED_MESSAGES, *self.extra_options]
        if self.max_metadata_size is not None:
            options += interop.metadata_limits(self.max_metadata_size)
        if self.max_pending_requests is not None:
            options += interop.pending_limits(self.max_pending_requests)
        return options


def build_server(name: str, options: BackendOptions) -> aio.Server:
    server = aio.server(
        options=options.server_options(),
        compression=grpc.Compression.Gzip if options.compress_all else None,
    )
    if options.refuse_all:
        server.add_generic_rpc_handlers((refusing.RefuseEverything(name),))
        return server
    server.add_generic_rpc_handlers(
        (echo.build_handler(echo.Counters(name=name), options.delay), interop.build_handler(name))
    )
    if options.reflection is not None:
        enable_reflection(server, options.reflection)
    return server


async def serve_backend(
    *,
    name: str,
    host: str,
    port: int,
    announce: Callable[[int], None],
    shutdown_trigger: Callable[[], Awaitable[object]],
    options: BackendOptions = BackendOptions(),
) -> None:
    """Serve until ``shutdown_trigger`` completes; ``announce`` gets the bound port."""
    server = build_server(name, options)
    if options.health:
        await enable_health(server)
    # An IPv6 literal needs brackets, or grpc reads its last group as the port.
    authority = f"[{host}]" if ":" in host else host
    credentials = options.credentials()
    bound = (server.add_insecure_port(f"{authority}:{port}") if credentials is None
             else server.add_secure_port(f"{authority}:{port}", credentials))
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    announce(bound)
    await shutdown_trigger()
    await server.stop(grace=STOP_GRACE)


def print_port(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


def watch_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin reaches EOF: the test process that holds the pipe died."""
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, on_readable)


def build_stop_event(*, stop_on_stdin_eof: bool) -> asyncio.Event:
    """An event that SIGTERM or SIGINT (and, if asked, EOF on stdin) sets; call it in the loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if stop_on_stdin_eof:
        watch_stdin_eof(loop, stop)
    return stop


def parse_backend_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.backend")
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reflection", action="store_true", help="offer server reflection")
    parser.add_argument("--declare-unary", action="append", default=[], metavar="METHOD",
                        help="with --reflection: claim this (streaming) method is unary")
    parser.add_argument("--refuse-all", action="store_true",
                        help="answer every call UNAVAILABLE (counted by churn.Control/Calls)")
    parser.add_argument("--max-metadata-size", type=int, default=None, metavar="BYTES")
    parser.add_argument("--max-pending-requests", type=int, default=None, metavar="N")
    parser.add_argument("--max-concurrent-streams", type=int, default=None, metavar="N",
                        help="streams one client connection may hold open (HTTP/2 SETTINGS)")
    parser.add_argument("--compress-all", action="store_true",
                        help="compress every response with gzip")
    parser.add_argument("--health", action="store_true",
                        help="offer grpc.health.v1.Health (SERVING until harness.Control/"
                        "SetHealth says otherwise)")
    parser.add_argument("--tls-cert", default=None, metavar="FILE")
    parser.add_argument("--tls-key", default=None, metavar="FILE")
    parser.add_argument("--tls-client-ca", default=None, metavar="FILE",
                        help="with --tls-cert: require client certificates signed by it")
    parser.add_argument("--delay-ms", type=float, default=0.0, metavar="MS",
                        help="answer Unary and WhoAmI this many milliseconds late")
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when stdin closes, so a killed test run leaves no backend behind",
    )
    args = parser.parse_args(argv)
    if args.refuse_all and args.reflection:
        parser.error("--refuse-all refuses reflection calls too: drop --reflection")
    if args.delay_ms < 0:
        parser.error("--delay-ms must be 0 or more")
    return args


async def run_backend(*, name: str, host: str, port: int, stop_on_stdin_eof: bool,
                      options: BackendOptions) -> None:
    stop = build_stop_event(stop_on_stdin_eof=stop_on_stdin_eof)
    await serve_backend(
        name=name, host=host, port=port, announce=print_port, shutdown_trigger=stop.wait,
        options=options,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_backend_args(argv)
    options = BackendOptions(
        reflection=args.declare_unary if args.reflection else None,
        refuse_all=args.refuse_all,
        max_metadata_size=args.max_metadata_size,
        max_pending_requests=args.max_pending_requests,
        compress_all=args.compress_all,
        health=args.health,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        delay=args.delay_ms / 1000,
        extra_options=(() if args.max_concurrent_streams is None
                       else (("grpc.max_concurrent_streams", args.max_concurrent_streams),)),
    )
    asyncio.run(
        run_backend(
            name=args.name,
            host=args.host,
            port=args.port,
            stop_on_stdin_eof=args.stop_on_stdin_eof,
            options=options,
        )
    )
    return 0
