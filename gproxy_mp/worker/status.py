"""The status a backend call really ended with, kept before grpc.aio can overwrite it.

grpc.aio has a race that a transparent proxy hits: when a backend ends a call (say
UNIMPLEMENTED) while a request message is still being written to it, the failed write makes
`StreamStreamCall.write` call `set_internal_error`, which *replaces* the call's status with
INTERNAL "Internal error from Core". Read afterwards, `await call.code()` returns that, not
what the backend sent (about 3 calls in 10 in a tight reproduction).

The first status is set exactly once, and grpc runs the call's done-callbacks synchronously at
that moment. So a done-callback copies code, details and trailing metadata there and then: the
public coroutines `code()`, `details()` and `trailing_metadata()` complete without suspending
once a status exists, so they are driven synchronously.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio

log = logging.getLogger(__name__)
T = TypeVar("T")

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True, slots=True)
class Status:
    code: grpc.StatusCode
    details: str
    trailers: Metadata


class StatusRecorder:
    """Register on a call before anything is written to it; `status()` gives the first one."""

    def __init__(self, call: grpc.aio.Call) -> None:
        self._call = call
        self._status: Status | None = None
        call.add_done_callback(self._on_done)

    def _on_done(self, call: Any) -> None:
        # Runs inside grpc's Cython status setter: it must not raise.
        try:
            self._status = Status(_result_now(call.code()), _result_now(call.details()),
                                  tuple(_result_now(call.trailing_metadata())))
        except Exception:  # a grpc version whose status needs a real await: read it later
            log.debug("could not copy the backend status at completion", exc_info=True)

    async def status(self) -> Status:
        if self._status is not None:
            return self._status
        call = self._call
        return Status(await call.code(), await call.details(),
                      tuple(await call.trailing_metadata()))


def _result_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that completes without suspending."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("the coroutine suspended")
