"""Which signals a gproxy-mp process (supervisor or worker) acts on, ignores, or leaves alone.

Every signal whose default action would end the process is decided here, once, for both roles:

- SIGTERM, SIGINT: graceful stop; SIGQUIT: stop now (each role's own handlers).
- SIGHUP (`RELOAD`): re-read the TLS files now, keep running.
- Stray, logged the first time each arrives, then ignored: SIGUSR1, SIGUSR2, SIGALRM,
  SIGVTALRM, SIGPROF, SIGIO (SIGPOLL), SIGPWR, SIGSTKFLT, SIGXCPU, the real-time signals.
- Ignored without a word: SIGPIPE, SIGXFSZ. A write to a closed socket or past a file-size
  limit fails with EPIPE/EFBIG instead (CPython's own choice, stated again here).
- Left at their default: SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT. They
  report a real fault of this process; catching them would hide a crash or loop on it.
- SIGKILL and SIGSTOP cannot be caught; the rest (SIGCHLD, SIGCONT, SIGURG, SIGWINCH, the
  terminal stops) never end a process by default and are left alone.

SIGXCPU is stray rather than a stop: the kernel sends it once a second past RLIMIT_CPU's soft
limit and SIGKILLs at the hard limit whatever we do; the first one is logged so the cause of
that kill is on record. Real-time signals end a process by default too, and nothing here (nor
gRPC, ZeroMQ or glibc's reserved ones, which Python's SIGRTMIN already skips) uses them.

Concurrency: handlers run on the event loop (`loop.add_signal_handler`) and only enqueue into a
`SignalInbox`; `answer_signals`, a root task of each role, does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

RELOAD = signal.SIGHUP
IGNORED = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
FAULTS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP,
                    signal.SIGSYS, signal.SIGABRT})
STOPS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})
HARMLESS = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH,
                      signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
"""Default action: ignore, continue or stop (suspend), never end the process: left alone."""
STRAY = frozenset({signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM,
                   signal.SIGPROF, signal.SIGIO, signal.SIGPWR, signal.SIGSTKFLT, signal.SIGXCPU,
                   *range(signal.SIGRTMIN, signal.SIGRTMAX + 1)})


def signal_name(signum: int) -> str:
    """`SIGHUP`; real-time signals as `SIGRTMIN+3`."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


class SignalInbox:
    """Signals that arrived and that the loop has not answered yet. A set, not a queue: the
    kernel coalesces repeats of a pending signal anyway, and a set stays bounded."""

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._arrived = asyncio.Event()

    def put(self, signum: int) -> None:
        self._pending.add(signum)
        self._arrived.set()

    async def take(self) -> list[int]:
        """Wait for at least one signal; every pending one, in number order."""
        await self._arrived.wait()
        self._arrived.clear()
        taken, self._pending = sorted(self._pending), set()
        return taken


def install_signal_handlers(stops: Mapping[int, Callable[[], None]], inbox: SignalInbox) -> None:
    """`stops` (a role's SIGTERM, SIGINT and SIGQUIT handlers), SIGHUP and the stray signals
    into `inbox`, SIGPIPE and SIGXFSZ ignored. Call from the running loop."""
    loop = asyncio.get_running_loop()
    for signum, handler in stops.items():
        loop.add_signal_handler(signum, handler)
    for signum in (RELOAD, *sorted(STRAY)):
        loop.add_signal_handler(signum, inbox.put, signum)
    for signum in IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {RELOAD, *STRAY})  # see `held_for_children`


_holding = 0  # starts in progress on this loop (the worker keepers start them concurrently)


@contextlib.contextmanager
def held_for_children() -> Iterator[None]:
    """Block SIGHUP and the stray signals while the supervisor starts a worker: the mask is
    inherited across fork and exec, so one sent to a worker before it installed its handlers
    (interpreter start, imports) waits for them instead of ending it. A signal to the
    supervisor meanwhile waits too, for the few milliseconds of the start. Nested and
    overlapping uses (each keeper awaits inside) unblock when the last one ends."""
    global _holding  # noqa: PLW0603  # one signal mask per thread; this is the loop's
    if _holding == 0:
        signal.pthread_sigmask(signal.SIG_BLOCK, {RELOAD, *STRAY})
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if _holding == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {RELOAD, *STRAY})


async def answer_signals(inbox: SignalInbox, *, reload: Callable[[], None]) -> None:
    """A root task, eternal: SIGHUP calls `reload` (which logs what it did); any other signal
    in the inbox is logged the first time it arrives, then ignored."""
    logged: set[int] = set()
    while True:
        for signum in await inbox.take():
            if signum == RELOAD:
                reload()
            elif signum not in logged:
                logged.add(signum)
                log.warning("%s received: ignored (gproxy-mp gives it no meaning; further ones "
                            "are not logged)", signal_name(signum))
