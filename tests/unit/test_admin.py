"""The admin HTTP endpoints: what each path answers, and the real server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gproxy_mp.errors import AddressInUseError
from gproxy_mp.supervisor.admin import AdminState, Response, start_admin

STEP_TIMEOUT = 5.0
"""Seconds one admin request may take before the test fails."""

ENDPOINTS: dict[str, Any] = {
    "0": {"target": "static:///10.0.0.1:1", "endpoints": ["10.0.0.1:1"], "seq": 1,
          "workers": {"0#0": "ready"}},
}


def ready() -> None:
    return None


def starting() -> str:
    return "route :5000 has no serving worker"


def state(readiness: Any = ready) -> AdminState:
    return AdminState(readiness=readiness, endpoints=lambda: ENDPOINTS)


RESPONSES = [
    pytest.param("GET", "/healthz", ready, 200, b"ok\n", id="healthz"),
    pytest.param("GET", "/healthz", starting, 200, b"ok\n", id="healthz-while-not-ready"),
    pytest.param("HEAD", "/healthz", ready, 200, b"ok\n", id="healthz-head"),
    pytest.param("GET", "/healthz?verbose=1", ready, 200, b"ok\n", id="healthz-query"),
    pytest.param("GET", "/readyz", ready, 200, b"ready\n", id="readyz-ready"),
    pytest.param("GET", "/readyz", starting, 503,
                 b"not ready: route :5000 has no serving worker\n", id="readyz-not-ready"),
    pytest.param("GET", "/nope", ready, 404,
                 b"not found; try /healthz, /readyz, /metrics, /debug/endpoints\n",
                 id="unknown-path"),
    pytest.param("POST", "/healthz", ready, 405, b"only GET and HEAD\n", id="post"),
    pytest.param("DELETE", "/readyz", ready, 405, b"only GET and HEAD\n", id="delete"),
]


@pytest.mark.parametrize(("method", "path", "readiness", "status", "body"), RESPONSES)
def test_each_admin_path_answers_with_its_status_and_body(
    method: str, path: str, readiness: Any, status: int, body: bytes
) -> None:
    response = state(readiness).respond(method, path)
    assert (response.status, response.body) == (status, body)


def test_debug_endpoints_answers_the_supervisors_view_as_json() -> None:
    response = state().respond("GET", "/debug/endpoints")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert json.loads(response.body) == ENDPOINTS


async def fetch(port: int, request: bytes) -> tuple[bytes, bytes]:
    """One request on one connection: (status line, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), STEP_TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], body


@pytest.fixture
async def admin_port() -> AsyncIterator[int]:
    server = await start_admin(state(starting), host="127.0.0.1", port=0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


HTTP_EXCHANGES = [
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK", b"ok\n",
                 id="healthz"),
    pytest.param(b"GET /readyz HTTP/1.1\r\n\r\n", b"HTTP/1.1 503 Service Unavailable",
                 b"not ready: route :5000 has no serving worker\n", id="readyz"),
    pytest.param(b"HEAD /healthz HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK", b"", id="head"),
    pytest.param(b"POST /healthz HTTP/1.1\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed",
                 b"only GET and HEAD\n", id="post"),
    pytest.param(b"garbage\r\n\r\n", b"HTTP/1.1 400 Bad Request", b"bad request\n",
                 id="bad-request-line"),
]


@pytest.mark.parametrize(("request_bytes", "status_line", "body"), HTTP_EXCHANGES)
async def test_the_admin_server_answers_over_http(
    admin_port: int, request_bytes: bytes, status_line: bytes, body: bytes
) -> None:
    assert await fetch(admin_port, request_bytes) == (status_line, body)


async def test_the_admin_server_sends_debug_endpoints_with_its_length(admin_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", admin_port)
    writer.write(b"GET /debug/endpoints HTTP/1.1\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), STEP_TIMEOUT)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == ENDPOINTS


async def test_an_admin_address_already_in_use_is_refused_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AddressInUseError) as caught:
            await start_admin(state(), host="127.0.0.1", port=port)
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_response_defaults_to_plain_text() -> None:
    assert Response(200, b"ok\n").content_type == "text/plain; charset=utf-8"
