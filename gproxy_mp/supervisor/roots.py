"""The supervisor's long-lived work as named roots, each with a stated policy (kopf's root tasks).

Every root is a coroutine that should run until the supervisor cancels it. One that returns or
raises instead is never silent:

* **restart** (`run_restarting`): logged as an error with its traceback, reported through
  `on_error` (the resolver's health: `gproxy_resolver_errors_total`, `/debug/endpoints`), and
  run afresh after a jittered, doubling backoff. Used for resolvers: the route keeps its last
  endpoint set meanwhile, and the new resolver starts with a full list.
* **fatal** (`watch_fatal`): logged with its traceback, then `on_fatal(reason)` stops gproxy-mp
  with exit 1 and one line naming the root: the bus server, each worker slot's keeper, the
  worker watchdog. Nothing else could take over their work.

Cancellation is how the supervisor stops a root; it is never reported.

Concurrency: everything runs on the supervisor's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from gproxy_mp.supervisor.policy import RestartBackoff, jittered

log = logging.getLogger(__name__)


async def run_restarting(name: str, run: Callable[[], Awaitable[object]], *,
                         on_error: Callable[[str], None],
                         backoff: RestartBackoff | None = None,
                         rng: Callable[[], float] = random.random) -> NoReturn:
    """Run `run()` again whenever it ends; only cancellation stops this."""
    backoff = backoff or RestartBackoff()
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the guard of an eternal root: log, count, restart
            message = f"{name} failed: {type(error).__name__}: {error}"
            log.error("%s", message, exc_info=error)
        else:
            message = f"{name} ended, which it never should"
            log.error("%s", message)
        on_error(message)
        delay = jittered(backoff.next_delay(uptime=loop.time() - started), rng=rng)
        log.warning("%s: restarting in %.1fs", name, delay)
        await asyncio.sleep(delay)


def watch_fatal(task: asyncio.Task[Any], *, on_fatal: Callable[[str], None],
                ending_ok: Callable[[], bool] = lambda: False) -> None:
    """Call `on_fatal` if `task` raises, or returns while `ending_ok()` is false; a cancelled
    task is being stopped and is never reported."""

    def ended(done: asyncio.Task[Any]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is None:
            if ending_ok():
                return
            reason = f"{done.get_name()} ended, which it never should"
            log.error("%s", reason)
        else:
            reason = f"{done.get_name()} failed: {type(error).__name__}: {error}"
            log.error("%s", reason, exc_info=error)
        on_fatal(reason)

    task.add_done_callback(ended)
