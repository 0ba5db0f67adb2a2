"""The static resolver: the list on the command line, once, then nothing more, forever.

Eternal like every resolver (design §5): the supervisor treats a resolver that ends as failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gproxy_mp.config import StaticTarget
from gproxy_mp.model import EndpointSet
from gproxy_mp.supervisor.resolvers.health import ResolverHealth


async def watch_static(target: StaticTarget, *,
                       health: ResolverHealth | None = None) -> AsyncIterator[EndpointSet]:
    if health is not None:  # no source to hear from again: no staleness to report
        health.source = {"listed": "command line"}
    yield target.endpoints
    await asyncio.Event().wait()  # never set: cancelled with the supervisor
