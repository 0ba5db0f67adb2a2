"""The static resolver: the list on the command line, once."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gproxy_mp.config import StaticTarget
from gproxy_mp.model import EndpointSet


async def watch_static(target: StaticTarget) -> AsyncIterator[EndpointSet]:
    yield target.endpoints
