"""Fixtures for process tests: real backends and the real ``gproxy-mp`` CLI.

Every process a fixture starts is torn down at the end of its scope
(SIGTERM, bounded wait, SIGKILL), and every test here has a hard timeout.
"""

from __future__ import annotations

from tests.support.fixtures import backends, launcher, proxies

__all__ = ["backends", "launcher", "proxies"]
