"""The client's request messages of one call: sent in order, replayed while they may be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gproxy_mp.worker.requests import RequestLog, Signal

STEP_TIMEOUT = 2.0
"""Seconds any single wait in these tests may take before the test fails."""
STALL_TIMEOUT = 0.1
"""Seconds a paused reader is watched to show it pulls nothing more."""

MESSAGES = [b"one", b"two", b"three"]


class FakeSink:
    """A backend call that records what it is sent; `gate` cleared makes writes block."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.done = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, request: bytes) -> None:
        await self.gate.wait()
        self.writes.append(request)

    async def done_writing(self) -> None:
        self.done = True


class CountingSource:
    """The client's request stream, counting how many messages were pulled from it."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.pulled = 0

    async def stream(self) -> AsyncIterator[bytes]:
        for message in self.messages:
            self.pulled += 1
            yield message


async def stream(messages: list[bytes]) -> AsyncIterator[bytes]:
    for message in messages:
        yield message


async def read_and_send(log: RequestLog, messages: list[bytes], sink: FakeSink) -> None:
    await asyncio.wait_for(asyncio.gather(log.read_from(stream(messages)), log.send_to(sink)),
                           STEP_TIMEOUT)


async def test_all_messages_are_sent_in_order_then_the_call_is_half_closed() -> None:
    log, sink = RequestLog(), FakeSink()
    await read_and_send(log, MESSAGES, sink)
    assert sink.writes == MESSAGES
    assert sink.done


async def test_a_sender_started_before_the_reader_waits_for_the_messages() -> None:
    log, sink = RequestLog(), FakeSink()
    sender = asyncio.create_task(log.send_to(sink))
    await asyncio.wait_for(log.read_from(stream(MESSAGES)), STEP_TIMEOUT)
    await asyncio.wait_for(sender, STEP_TIMEOUT)
    assert sink.writes == MESSAGES


async def test_an_empty_request_stream_only_half_closes() -> None:
    log, sink = RequestLog(), FakeSink()
    await read_and_send(log, [], sink)
    assert (sink.writes, sink.done) == ([], True)


async def test_a_second_attempt_replays_every_message_from_the_first() -> None:
    log, first, second = RequestLog(), FakeSink(), FakeSink()
    await read_and_send(log, MESSAGES, first)
    await asyncio.wait_for(log.send_to(second), STEP_TIMEOUT)
    assert log.replayable
    assert second.writes == MESSAGES
    assert second.done


async def test_a_replay_after_commit_is_refused() -> None:
    log = RequestLog()
    await read_and_send(log, MESSAGES, FakeSink())
    log.commit()
    assert not log.replayable
    with pytest.raises(RuntimeError, match="cannot be replayed"):
        await asyncio.wait_for(log.send_to(FakeSink()), STEP_TIMEOUT)


async def test_a_request_outgrowing_the_window_is_no_longer_replayable() -> None:
    # Each message counts its payload plus the 5-byte gRPC frame header.
    log, sink = RequestLog(window=20), FakeSink()
    await read_and_send(log, [b"12345", b"67890"], sink)
    assert log.replayable
    log, sink = RequestLog(window=20), FakeSink()
    await read_and_send(log, [b"12345", b"67890", b"x"], sink)
    assert not log.replayable
    assert sink.writes == [b"12345", b"67890", b"x"]


async def test_messages_after_a_commit_still_reach_the_current_attempt() -> None:
    log, sink = RequestLog(), FakeSink()
    sender = asyncio.create_task(log.send_to(sink))
    log.commit()
    await asyncio.wait_for(log.read_from(stream(MESSAGES)), STEP_TIMEOUT)
    await asyncio.wait_for(sender, STEP_TIMEOUT)
    assert (sink.writes, sink.done) == (MESSAGES, True)


async def test_a_blocked_backend_stops_the_reader_once_the_window_is_exceeded() -> None:
    log, sink = RequestLog(window=10), FakeSink()
    sink.gate.clear()
    source = CountingSource([b"abcd"] * 100)
    reader = asyncio.create_task(log.read_from(source.stream()))
    sender = asyncio.create_task(log.send_to(sink))
    _, pending = await asyncio.wait({reader}, timeout=STALL_TIMEOUT)
    assert reader in pending, "the reader finished although nothing could be sent"
    assert source.pulled == 2  # 2 x (4 + 5-byte frame header) = 18 bytes waiting > 10

    sink.gate.set()
    await asyncio.wait_for(asyncio.gather(reader, sender), STEP_TIMEOUT)
    assert source.pulled == 100
    assert sink.writes == [b"abcd"] * 100
    assert sink.done


async def test_a_blocked_backend_stops_the_reader_even_for_empty_messages() -> None:
    log, sink = RequestLog(window=10), FakeSink()
    sink.gate.clear()
    source = CountingSource([b""] * 1000)
    reader = asyncio.create_task(log.read_from(source.stream()))
    sender = asyncio.create_task(log.send_to(sink))
    try:
        await asyncio.wait({reader}, timeout=STALL_TIMEOUT)
        assert source.pulled < 100
    finally:
        for task in (reader, sender):
            task.cancel()
        await asyncio.gather(reader, sender, return_exceptions=True)


async def test_a_single_message_and_half_close_is_recognised() -> None:
    log = RequestLog()
    reader = asyncio.create_task(log.read_from(stream([b"only"])))
    assert await log.single_message(timeout=STEP_TIMEOUT) == b"only"
    await asyncio.wait_for(reader, STEP_TIMEOUT)


async def test_two_messages_are_not_a_single_message() -> None:
    log = RequestLog()
    reader = asyncio.create_task(log.read_from(stream([b"a", b"b"])))
    assert await log.single_message(timeout=STEP_TIMEOUT) is None
    await asyncio.wait_for(reader, STEP_TIMEOUT)


async def test_a_client_that_keeps_its_stream_open_is_not_waited_for_long() -> None:
    log = RequestLog()
    held = asyncio.Event()

    async def open_stream() -> AsyncIterator[bytes]:
        yield b"first"
        await held.wait()  # the client waits for a reply before sending more

    reader = asyncio.create_task(log.read_from(open_stream()))
    assert await log.single_message(timeout=0.01) is None
    held.set()
    await asyncio.wait_for(reader, STEP_TIMEOUT)


async def test_a_signal_wakes_every_waiter_and_a_timed_wait_ends_unset() -> None:
    signal = Signal(asyncio.get_running_loop())
    assert await signal.wait(0.01) is False  # nobody set it: the timeout ends the wait
    waiters = [asyncio.create_task(signal.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    signal.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await signal.wait(0) is True  # already set: no wait at all
    signal.clear()
    assert not signal.is_set()
