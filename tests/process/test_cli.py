"""The command line: help, version, and one clear error line for every bad input."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from harness import procfacts
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port

pytestmark = pytest.mark.timeout(120)

EXIT_TIMEOUT = 30.0
"""Seconds a refusing gproxy-mp may take to exit (interpreter start included)."""
USAGE = 2
RUNTIME = 1
ERROR_LINE = re.compile(r"^error: .+", re.IGNORECASE | re.MULTILINE)


def finished(proxy: Proxy) -> int:
    return proxy.wait(timeout=EXIT_TIMEOUT)


def error_lines(proxy: Proxy) -> list[str]:
    return ERROR_LINE.findall(proxy.stderr())


def assert_refused(proxy: Proxy, *, code: int, naming: str) -> None:
    """Exit ``code``, an ``error:`` line naming ``naming``, and no traceback."""
    rc = finished(proxy)
    output = proxy.output()
    assert rc == code, f"exit code {rc}, wanted {code}\n{output}"
    assert "Traceback" not in output, output
    lines = error_lines(proxy)
    assert lines, f"no 'error: ' line\n{output}"
    assert any(naming in line for line in lines), f"no error line names {naming!r}\n{output}"


@pytest.mark.parametrize("flag", ["--help", "-h", "--version"])
def test_help_and_version_exit_zero(proxies: Callable[..., Proxy], flag: str) -> None:
    proxy = proxies(flag)
    rc = finished(proxy)
    assert rc == 0, proxy.output()
    assert proxy.stdout_path.read_text().strip(), proxy.output()
    assert "Traceback" not in proxy.output(), proxy.output()


def test_help_lists_every_documented_option(proxies: Callable[..., Proxy]) -> None:
    proxy = proxies("--help")
    assert finished(proxy) == 0, proxy.output()
    text = proxy.stdout_path.read_text()
    for option in (
        "--proxy",
        "--shutdown-delay",
        "--workers",
        "--drain-timeout",
        "--dns-refresh-rate",
        "--admin-address",
        "--log-format",
        "--log-level",
        "--max-connection-age",
        "--learn-unary-methods",
        "--max-connection-age-grace",
        "--version",
    ):
        assert option in text, f"{option} missing\n{proxy.output()}"


def valid_route() -> str:
    return f"127.0.0.1:{free_port()}-static:///127.0.0.1:1"


USAGE_ERRORS: list[tuple[str, Callable[[int], list[str]], str]] = [
    ("missing proxy", lambda port: ["--workers", "1"], "-p"),
    ("no target", lambda port: ["-p", "nonsense"], "nonsense"),
    ("unknown scheme", lambda port: ["-p", f"127.0.0.1:{port}-foo:///x:1"], "foo"),
    (
        "target without port",
        lambda port: ["-p", f"127.0.0.1:{port}-static:///127.0.0.1"],
        "static:///127.0.0.1",
    ),
    (
        "listen port out of range",
        lambda port: ["-p", "127.0.0.1:70000-static:///127.0.0.1:1"],
        "70000",
    ),
    ("bad duration", lambda port: ["-p", valid_route(), "-d", "abc"], "abc"),
    ("no workers", lambda port: ["-p", valid_route(), "--workers", "0"], "workers"),
    ("connection age too short",
     lambda port: ["-p", valid_route(), "--max-connection-age", "5ms"], "--max-connection-age"),
    # Beyond gRPC's int32 milliseconds: every worker died of an OverflowError, exit 1.
    ("connection age too long",
     lambda port: ["-p", valid_route(), "--max-connection-age", "597h"], "597h"),
    ("duration of 1e300", lambda port: ["-p", valid_route(), "--drain-timeout", "1e300"], "1e300"),
    ("admin on a listen address",
     lambda port: ["-p", f"127.0.0.1:{port}-static:///127.0.0.1:1",
                   "--admin-address", f"127.0.0.1:{port}"], "--admin-address"),
    ("no concurrent streams",
     lambda port: ["-p", valid_route(), "--max-concurrent-streams", "0"],
     "--max-concurrent-streams"),
    ("worker timeout too short",
     lambda port: ["-p", valid_route(), "--worker-timeout", "500ms"], "--worker-timeout"),
    # The split tried every dash, each with a full parse: 52 s for this value, now linear.
    ("100,000 dashes", lambda port: ["-p", "-" * 100_000], "(100000 characters)"),
]


@pytest.mark.parametrize(
    ("args", "naming"),
    [pytest.param(build, naming, id=case) for case, build, naming in USAGE_ERRORS],
)
def test_bad_usage_exits_two_with_one_line_naming_the_value(
    proxies: Callable[..., Proxy], args: Callable[[int], list[str]], naming: str
) -> None:
    proxy = proxies(*args(free_port()))
    assert_refused(proxy, code=USAGE, naming=naming)


@pytest.fixture(params=[False, True], ids=["plain", "reuseport"])
def held_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port another program listens on (with or without SO_REUSEPORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if request.param:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_held_by_another_program_exits_one_naming_the_address(
    proxies: Callable[..., Proxy], held_port: int
) -> None:
    proxy = proxies(*proxy_args(route(held_port, "127.0.0.1:1"), workers=1))
    assert_refused(proxy, code=RUNTIME, naming=f"127.0.0.1:{held_port}")


def test_a_second_instance_on_the_same_port_exits_one_and_the_first_keeps_serving(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    port = free_port()
    address = f"127.0.0.1:{port}"
    first = proxies(*proxy_args(route(port, backend), workers=2))
    first.wait_serving(address)

    second = proxies(*proxy_args(route(port, backend), workers=2))
    assert_refused(second, code=RUNTIME, naming=address)

    assert first.process.poll() is None, first.output()
    first.wait_serving(address, timeout=5)
    owners = set(procfacts.descendants(first.pid))
    assert procfacts.listeners(port) <= owners, (
        f"listeners {procfacts.listeners(port)} not all the first instance's {owners}\n"
        f"{first.output()}\n{second.output()}"
    )


def test_the_longest_connection_age_serves(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=1),
                    "--max-connection-age", "596h31m23s",
                    "--max-connection-age-grace", "596h31m23s")
    proxy.wait_serving(f"127.0.0.1:{port}")
    assert "Traceback" not in proxy.output(), proxy.output()


def test_check_resolves_each_target_once_and_reports_a_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "--check",
         "-p", f"127.0.0.1:{free_port()}-static:///127.0.0.1:7,[::1]:8",
         "-p", f"127.0.0.1:{free_port()}-localhost:9", "--admin-address", "off"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "static:///127.0.0.1:7,[::1]:8" in result.stdout
    assert "resolve localhost (system resolver)" in result.stdout
    assert "FAIL" not in result.stdout


def test_check_fails_when_a_name_does_not_resolve() -> None:
    # A DNS server address on loopback where nothing answers: the lookup times out, no query
    # ever leaves the machine.
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "--check",
         "-p", f"127.0.0.1:{free_port()}-dns://127.0.0.1:{free_port()}/backends.test:9",
         "--admin-address", "off"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout
    assert "Traceback" not in result.stderr


ENVIRONMENT_ERRORS: list[tuple[str, str, str]] = [
    # (variable, bad value, the flag the line must not name instead)
    ("GPROXY_WORKERS", "abc", "--workers"),
    ("GPROXY_SHUTDOWN_DELAY", "soon", "--shutdown-delay"),
    ("GPROXY_PROXY", "nonsense", "--proxy"),
    ("GPROXY_LOG_FORMAT", "xml", "--log-format"),  # click's own choice check
    ("GPROXY_BACKEND_TLS", "maybe", "--backend-tls"),  # click's own boolean check
]


@pytest.mark.parametrize(("variable", "value", "flag"), ENVIRONMENT_ERRORS,
                         ids=[variable for variable, _, _ in ENVIRONMENT_ERRORS])
def test_a_bad_environment_value_exits_two_with_one_line_naming_the_variable(
        variable: str, value: str, flag: str) -> None:
    args = [] if variable == "GPROXY_PROXY" else ["-p", valid_route()]
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "--admin-address", "off", *args],
        env={**os.environ, variable: value}, capture_output=True, text=True,
        timeout=EXIT_TIMEOUT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == USAGE, output
    assert "Traceback" not in output, output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert variable in lines[0] and value in lines[0], output
    assert flag not in lines[0], output


def test_a_check_across_options_names_the_variable_a_value_came_from() -> None:
    route = valid_route()
    listen = route.split("-static:", 1)[0]
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "-p", route],
        env={**os.environ, "GPROXY_ADMIN_ADDRESS": listen}, capture_output=True, text=True,
        timeout=EXIT_TIMEOUT, check=False)
    assert result.returncode == USAGE, result.stderr
    assert result.stderr.splitlines() == [
        f"error: GPROXY_ADMIN_ADDRESS {listen}: already the listen address of --proxy "
        f"{route!r}"], result.stderr


def test_the_same_bad_value_as_a_flag_names_the_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "-p", valid_route(), "--workers", "abc"],
        env={**os.environ, "GPROXY_WORKERS": "2"}, capture_output=True, text=True,
        timeout=EXIT_TIMEOUT, check=False)
    assert result.returncode == USAGE, result.stderr
    assert result.stderr.splitlines() == [
        "error: --workers 'abc': expected a positive integer or 'auto'"], result.stderr
