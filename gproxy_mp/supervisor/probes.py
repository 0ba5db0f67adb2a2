"""What `--check` tries against the machine and the network, holding nothing afterwards.

- `probe_address`: bind a listen or admin address the way the start would
  (`ports.check_free`) and release it at once; when it is taken, name the processes holding
  the port (psutil; a socket of another user shows no pid unless we are root).
- `probe_endpoints`: one TCP connection per endpoint, closed at once, `CONNECT_CONCURRENCY` at
  a time, each bounded by `CONNECT_TIMEOUT`, at most `MAX_CONNECTS` per target.

Concurrency: the caller's event loop; psutil runs inline (it reads /proc once).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from gproxy_mp.config import ListenAddress
from gproxy_mp.errors import AddressInUseError, ConfigError
from gproxy_mp.model import Endpoint
from gproxy_mp.supervisor.ports import check_free

CONNECT_TIMEOUT = 3.0
"""Seconds one TCP connection of `--check` may take: a backend slower than that to accept is
reported as one that does not (a real call would have waited on it too)."""
CONNECT_CONCURRENCY = 32
"""Connections `--check` has open at once, so a large Service does not open hundreds."""
MAX_CONNECTS = 100
"""Endpoints `--check` tries per target; the rest are counted as not tried."""
MAX_HOLDERS = 3
"""Processes named when an address is taken."""


def probe_address(listen: ListenAddress, *, what: str) -> str | None:
    """None if `listen` is free (bound and released); else why not, naming the holders."""
    try:
        check_free(listen, what=what)
    except AddressInUseError as e:
        return f"{e}{_holders(listen.port)}"
    except ConfigError as e:  # the host does not resolve
        return str(e)
    return None


def _holders(port: int) -> str:
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return ""
    pids = sorted({c.pid for c in connections if c.laddr and c.laddr.port == port
                   and c.status in (psutil.CONN_LISTEN, psutil.CONN_NONE) and c.pid is not None})
    if not pids:
        return " (its holder is not visible to this user)"
    named = []
    for pid in pids[:MAX_HOLDERS]:
        try:
            named.append(f"pid {pid} ({psutil.Process(pid).name()})")
        except psutil.Error:
            named.append(f"pid {pid}")
    more = f" and {len(pids) - MAX_HOLDERS} more" if len(pids) > MAX_HOLDERS else ""
    return f": held by {', '.join(named)}{more}"


@dataclass(frozen=True, slots=True)
class Reach:
    """One endpoint's TCP connection: None if it was accepted, else why not."""

    endpoint: Endpoint
    error: str | None


async def probe_endpoints(endpoints: Sequence[Endpoint]) -> tuple[list[Reach], int]:
    """Connect to up to `MAX_CONNECTS` of `endpoints`; their results and how many were not
    tried."""
    tried = list(endpoints[:MAX_CONNECTS])
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def reach(endpoint: Endpoint) -> Reach:
        async with gate:
            return Reach(endpoint, await _connect(endpoint))

    return list(await asyncio.gather(*(reach(e) for e in tried))), len(endpoints) - len(tried)


async def _connect(endpoint: Endpoint) -> str | None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT:g}s"
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            return "connection refused"
        return e.strerror or str(e)
    writer.close()
    with contextlib.suppress(OSError):  # it closed first: it accepted, which is all we asked
        await writer.wait_closed()
    return None
