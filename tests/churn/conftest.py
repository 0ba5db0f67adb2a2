"""Fixtures for the churn tier: real backends (healthy or refusing), dnsmasq, the real CLI.

Every process a fixture starts is stopped at teardown: SIGTERM to its own process group, a
bounded wait, then SIGKILL. Without dnsmasq the tests that need it skip with one line (CI, with
GPROXY_REQUIRE_ALL_TIERS=1, turns that skip into a failure).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.churn.peers import UnavailableBackend
from tests.dns.fixtures import dns_server, shared_port_backends
from tests.support.fixtures import backends, launcher, proxies
from tests.support.processes import Backend, Launcher

__all__ = ["backends", "dns_server", "launcher", "proxies", "shared_port_backends"]


@pytest.fixture
def unavailable_backends(launcher: Launcher) -> Callable[[str], UnavailableBackend]:
    """Factory: `unavailable_backends("x")` starts a backend that answers every call
    UNAVAILABLE."""

    def start(name: str) -> UnavailableBackend:
        backend = UnavailableBackend(name, log_dir=launcher.log_dir)
        launcher.backends.append(backend)
        return backend

    return start


@pytest.fixture
def hosted_backends(launcher: Launcher) -> Callable[..., Backend]:
    """Factory: `hosted_backends("a2", host="127.0.0.5", port=p)` starts a backend on that
    address (a replacement joining the others on their shared port)."""
    return launcher.start_backend
