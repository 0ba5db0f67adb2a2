"""`--log-format json`: every line gproxy-mp writes to stderr is one JSON object.

A whole lifecycle through the real CLI (start, calls that succeed and fail, a route whose only
backend refuses connections, SIGTERM, delay, drain, exit) with `--access-log`, on each data
plane, and then stderr
read line by line: each line must parse on its own and carry the README's fields. A traceback,
a `print`, or gRPC core writing its own log lines would break a log pipeline, and fails here.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from harness import client, procfacts
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(120), both_planes]

COMMON_FIELDS = ("time", "level", "role", "route", "pid", "msg")
"""Fields of every JSON line (README, `--log-format`)."""
ACCESS_FIELDS = ("method", "backend", "code", "duration_ms")
"""Extra fields of every access-log line."""
LEVELS = {"debug", "info", "warning", "error", "critical"}
EXIT_TIMEOUT = 20.0
"""Seconds for the proxy to exit after SIGTERM (no delay, 2 s drain, worker exits)."""


def parse_lines(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Each non-empty line as a JSON object; the lines that are not one, separately."""
    entries: list[dict[str, Any]] = []
    bad: list[str] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line)
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            bad.append(line)
    return entries, bad


def code_of(call: Callable[[], object]) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name
    return "OK"


def test_every_stderr_line_is_a_json_object_with_the_common_fields_and_access_fields(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    port, dead_port = free_port(), free_port()
    address, dead_route = f"127.0.0.1:{port}", f"127.0.0.1:{dead_port}"
    refused = f"127.0.0.1:{free_port()}"  # nothing listens there: connections are refused
    proxy = proxies(
        *proxy_args(route(port, backend), route(dead_port, refused), workers=2),
        "--log-format", "json", "--access-log",
    )
    proxy.wait_serving(address)
    # Every worker serves (and so has logged) before SIGTERM: a worker stopped while it still
    # waits for its first endpoint set exits without a word, on a loaded machine too.
    assert wait_until(lambda: all(len(procfacts.listeners(p)) == 2 for p in (port, dead_port)),
                      timeout=20), proxy.output()

    with client.open_channel(address) as channel:
        codes = {
            "/test.Echo/Whoami": code_of(lambda: client.whoami(channel)),
            "/test.Echo/Fail": client.fail(channel, code="NOT_FOUND", details="no such thing",
                                           details_bin=b"").code().name,
            "/test.Echo/Nope": code_of(
                lambda: client.unary_unary(channel, "Nope")(b"", timeout=5)),
        }
    with client.open_channel(dead_route) as channel:
        codes["/test.Echo/Unary"] = code_of(lambda: client.echo(channel, b"x", timeout=5))
    proxy.send(signal.SIGTERM)
    code = proxy.wait(timeout=EXIT_TIMEOUT)

    stderr = proxy.stderr()
    entries, bad = parse_lines(stderr)
    report = proxy.output()
    assert code == 0, report
    assert codes == {"/test.Echo/Whoami": "OK", "/test.Echo/Fail": "NOT_FOUND",
                     "/test.Echo/Nope": "UNIMPLEMENTED", "/test.Echo/Unary": "UNAVAILABLE"}, (
        f"{codes}\n{report}")
    assert bad == [], f"{len(bad)} lines are not JSON objects, first: {bad[:5]}\n{report}"
    assert entries, report

    missing = [(e, [f for f in COMMON_FIELDS if f not in e]) for e in entries
               if not all(f in e for f in COMMON_FIELDS)]
    assert missing == [], f"lines without common fields: {missing[:3]}"
    assert {e["level"] for e in entries} <= LEVELS, {e["level"] for e in entries}
    assert all(isinstance(e["pid"], int) for e in entries), entries[:3]
    assert all("exc" not in e for e in entries), [e for e in entries if "exc" in e][:2]

    roles = {e["role"] for e in entries}
    assert "supervisor" in roles, roles
    workers = {r for r in roles if r.startswith("worker ")}
    assert len(workers) == 4, f"two workers on each of two routes: {roles}"
    assert {e["route"] for e in entries if e["role"] in workers} == {address, dead_route}, (
        {(e["role"], e["route"]) for e in entries})
    assert any(e["msg"].startswith("shutdown") for e in entries if e["role"] == "supervisor")

    access = [e for e in entries if all(f in e for f in ACCESS_FIELDS)]
    assert all(e["role"] in workers and e["level"] == "info" for e in access), access
    seen = {e["method"]: e for e in access}
    for method, wanted in codes.items():
        assert method in seen, f"no access line for {method}: {access}"
        line = seen[method]
        assert line["code"] == wanted, line
        assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0, line
    assert seen["/test.Echo/Whoami"]["backend"] == backend.address, seen
    assert seen["/test.Echo/Fail"]["backend"] == backend.address, seen
