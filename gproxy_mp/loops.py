"""Which asyncio event loop the workers run: uvloop when installed, else asyncio's own.

uvloop (libuv) makes the loop's own work cheaper: scheduling callbacks, futures and the socket
reads by which grpc.aio's poller thread wakes the loop. Measured on a small unary call through
one worker (`bench cost`, interleaved): 414 -> 385 us of CPU per call, and 37.8 -> 33.7 ms per
1,000-message stream. Behaviour is the same (the whole test suite runs on it); `asyncio` stays
selectable, and is what `auto` falls back to where uvloop cannot be installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gproxy_mp.errors import ConfigError

T = TypeVar("T")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def check_event_loop(name: str) -> str:
    """`name` if it can run here; `uvloop` when it is not installed is refused."""
    if name not in EVENT_LOOPS:
        raise ConfigError(f"{name!r}: expected one of {', '.join(EVENT_LOOPS)}")
    if name == "uvloop" and not uvloop_available():
        raise ConfigError("'uvloop': not installed (pip install uvloop), or use auto/asyncio")
    return name


def resolve(name: str) -> str:
    """The loop `name` stands for: `auto` becomes `uvloop` or `asyncio`."""
    if name == "auto":
        return "uvloop" if uvloop_available() else "asyncio"
    return name


def runner(name: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    """`asyncio.run`, or uvloop's equivalent, for the resolved loop `name`."""
    if resolve(name) == "uvloop":
        import uvloop  # noqa: PLC0415 (optional)

        return uvloop.run
    return asyncio.run
