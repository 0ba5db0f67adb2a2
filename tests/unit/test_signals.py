"""Every signal has a decided fate (`gproxy_mp.signals`), and the inbox coalesces repeats."""

from __future__ import annotations

import asyncio
import signal

import pytest

from gproxy_mp.signals import (
    FAULTS,
    HARMLESS,
    IGNORED,
    RELOAD,
    STOPS,
    STRAY,
    UNCATCHABLE,
    SignalInbox,
    held_for_children,
    signal_name,
)

GROUPS = {"stops": STOPS, "reload": frozenset({RELOAD}), "stray": STRAY, "ignored": IGNORED,
          "faults": FAULTS, "harmless": HARMLESS, "uncatchable": UNCATCHABLE}


@pytest.mark.parametrize("signum", sorted(signal.valid_signals()), ids=signal_name)
def test_every_signal_is_decided_exactly_once(signum: int) -> None:
    decided = [name for name, group in GROUPS.items() if signum in group]
    assert len(decided) == 1, f"{signal_name(signum)}: {decided}"


@pytest.mark.parametrize(("signum", "name"), [
    (signal.SIGHUP, "SIGHUP"), (signal.SIGIO, "SIGIO"), (signal.SIGRTMIN, "SIGRTMIN"),
    (signal.SIGRTMIN + 3, "SIGRTMIN+3"), (signal.SIGRTMAX, "SIGRTMAX"),
])
def test_signals_are_named_for_the_log(signum: int, name: str) -> None:
    assert signal_name(signum) == name


def test_the_inbox_hands_over_each_pending_signal_once_in_number_order() -> None:
    async def scenario() -> tuple[list[int], bool]:
        inbox = SignalInbox()
        for signum in (signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR2, signal.SIGUSR1):
            inbox.put(signum)
        taken = await inbox.take()
        waiting = asyncio.create_task(inbox.take())
        await asyncio.sleep(0)
        still_waiting = not waiting.done()
        waiting.cancel()
        return taken, still_waiting

    taken, still_waiting = asyncio.run(scenario())
    assert taken == [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]
    assert still_waiting


def blocked() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_overlapping_worker_starts_unblock_the_signals_when_the_last_one_ends() -> None:
    # Each worker keeper awaits inside `held_for_children`, so two starts overlap; restoring
    # the mask each saw on entry would leave SIGHUP blocked in the supervisor for good.
    first, second = held_for_children(), held_for_children()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert signal.SIGHUP in blocked() and signal.SIGUSR1 in blocked()
    second.__exit__(None, None, None)
    assert signal.SIGHUP not in blocked() and signal.SIGUSR1 not in blocked()
