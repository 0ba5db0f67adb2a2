"""`gproxy-mp --check` tries what the start would: the listen and admin addresses (bind and
release, naming who holds them) and one TCP connection per endpoint, and still starts nothing.
A held address fails the check (exit 1, as the start would); a backend that refuses
connections is a warning row with a summary, exit 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness.processes import free_port

pytestmark = pytest.mark.timeout(120)


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gproxy_mp", "--check", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def listening() -> Iterator[tuple[socket.socket, int]]:
    """A socket of this test process listening on a loopback port, and the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock, sock.getsockname()[1]


def rows(result: subprocess.CompletedProcess[str], verdict: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if f"  {verdict}: " in line]


def test_a_held_listen_address_fails_the_check_naming_its_holder(
    listening: tuple[socket.socket, int],
) -> None:
    _, port = listening
    result = check("-p", f"127.0.0.1:{port}-static:///127.0.0.1:{port}", "--admin-address", "off")
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    [failed] = rows(result, "FAIL")
    assert f"127.0.0.1:{port}" in failed and "in use" in failed, report
    assert f"pid {os.getpid()}" in failed, report
    assert "Traceback" not in report


def test_a_held_admin_address_fails_the_check(listening: tuple[socket.socket, int]) -> None:
    _, held = listening
    backend_port = held  # something that accepts connections
    result = check("-p", f"127.0.0.1:{free_port()}-static:///127.0.0.1:{backend_port}",
                   "--admin-address", f"127.0.0.1:{held}")
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    [failed] = rows(result, "FAIL")
    assert "--admin-address" in failed and f"127.0.0.1:{held}" in failed, report


def test_a_backend_that_refuses_connections_is_a_warning_and_the_check_passes(
    listening: tuple[socket.socket, int],
) -> None:
    _, accepting = listening
    refusing = free_port()  # nothing listens there
    result = check("-p", f"127.0.0.1:{free_port()}-static:///127.0.0.1:{accepting},"
                   f"127.0.0.1:{refusing}", "--admin-address", f"127.0.0.1:{free_port()}")
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert rows(result, "FAIL") == [], report
    warnings = rows(result, "WARN")
    assert any(f"connect to 127.0.0.1:{refusing}" in w and "refused" in w for w in warnings), (
        report)
    assert not any(f"connect to 127.0.0.1:{accepting}" in w for w in warnings), report
    assert any("1 of 2 endpoints accept TCP connections" in w for w in warnings), report


def test_the_check_leaves_its_addresses_free() -> None:
    port, admin = free_port(), free_port()
    result = check("-p", f"127.0.0.1:{port}-static:///127.0.0.1:{free_port()}",
                   "--admin-address", f"127.0.0.1:{admin}")
    assert result.returncode == 0, result.stdout + result.stderr
    for free in (port, admin):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", free))  # raises if the check left anything bound
