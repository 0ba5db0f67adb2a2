"""Fixtures for process tests: real backends and the real ``gproxy-mp`` CLI.

Every process a fixture starts is torn down at the end of its scope
(SIGTERM, bounded wait, SIGKILL), and every test here has a hard timeout.
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
def backends(launcher: Launcher) -> Callable[[str], Backend]:
    """Factory: ``backends("a")`` starts a backend named ``a``."""
    return launcher.start_backend


@pytest.fixture
def proxies(launcher: Launcher) -> Callable[..., Proxy]:
    """Factory: ``proxies("-p", route, "--workers", "2")`` starts ``gproxy-mp``."""
    return launcher.start_proxy
