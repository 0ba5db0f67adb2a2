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
