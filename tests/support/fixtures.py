"""Process fixtures shared by the tiers that run real backends and the real CLI.

A tier's conftest re-exports the ones it uses (listing them in ``__all__``). Every process a
fixture starts is stopped at teardown by the `Launcher`: SIGTERM to its own process group, a
bounded wait, then SIGKILL.

Concurrency: fixtures run on the test thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import Backend, Launcher, Proxy


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    started = Launcher(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def backends(launcher: Launcher) -> Callable[..., Backend]:
    """Factory: ``backends("a")`` starts a backend named ``a`` on 127.0.0.1, any port."""
    return launcher.start_backend


@pytest.fixture
def proxies(launcher: Launcher) -> Callable[..., Proxy]:
    """Factory: ``proxies("-p", route, "--workers", "2")`` starts ``gproxy-mp``."""
    return launcher.start_proxy
