"""The admin HTTP port, served by the supervisor: liveness, readiness, endpoint introspection.

    GET /healthz           200 while the supervisor's loop runs (liveness)
    GET /readyz            200 while every route has a serving worker and no shutdown has begun;
                           503 with the reason otherwise (it turns 503 at the first SIGTERM)
    GET /metrics           Prometheus text format, aggregated over all workers
    GET /debug/endpoints   JSON: each route's target, endpoint set, bus seq, resolver health and
                           provenance, and its workers

A deliberately small HTTP/1.1 server on asyncio streams (one request per connection, GET/HEAD
only, bounded request size and read timeout): the supervisor must not import a web framework,
and these endpoints are read by kubelets and operators, not browsers. Binds loopback by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gproxy_mp.errors import AddressInUseError

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
"""Seconds a client has to send its request line and headers."""
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST_BYTES = 16 * 1024
"""Largest request head accepted; admin requests are tiny."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable",
            400: "Bad Request"}


class AdminState:
    """What the admin endpoints report; the supervisor's loop feeds it."""

    def __init__(self, *, readiness: Callable[[], str | None],
                 endpoints: Callable[[], dict[str, Any]],
                 metrics: Callable[[], str] = lambda: "") -> None:
        self._readiness = readiness  # None when ready, else the reason it is not
        self._endpoints = endpoints
        self._metrics = metrics

    def respond(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, b"only GET and HEAD\n")
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return Response(200, b"ok\n")
        if path == "/readyz":
            reason = self._readiness()
            if reason is None:
                return Response(200, b"ready\n")
            return Response(503, f"not ready: {reason}\n".encode())
        if path == "/metrics":
            return Response(200, self._metrics().encode(), PROMETHEUS_TEXT)
        if path == "/debug/endpoints":
            body = json.dumps(self._endpoints(), indent=2, sort_keys=True).encode() + b"\n"
            return Response(200, body, "application/json")
        return Response(404, b"not found; try /healthz, /readyz, /metrics, /debug/endpoints\n")


async def start_admin(state: AdminState, *, host: str, port: int) -> asyncio.Server:
    """Bind and start serving; raises `AddressInUseError` naming the address if it cannot."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            response = (state.respond(parts[0], parts[1]) if len(parts) == 3
                        else Response(400, b"bad request\n"))
            status_line = f"HTTP/1.1 {response.status} {_REASONS.get(response.status, '')}"
            writer.write(
                f"{status_line}\r\nContent-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n".encode())
            if parts and parts[0] != "HEAD":
                writer.write(response.body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass  # a slow, broken or oversized request: just close the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    address = _display(host, port)
    try:
        server = await asyncio.start_server(handle, host or None, port,
                                            limit=MAX_REQUEST_BYTES, reuse_address=True)
    except OSError as e:
        raise AddressInUseError(f"--admin-address {address}: {e.strerror}") from None
    log.info("admin endpoints on http://%s/ (healthz, readyz, metrics, debug/endpoints)",
             address)
    return server


def _display(host: str, port: int) -> str:
    if not host:
        return f"[::]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
