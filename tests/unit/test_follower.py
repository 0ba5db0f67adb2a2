"""The worker's bus follower step, with plain transcripts: each line is an event and the
actions it must produce (mitmproxy's Playbook, h11's event tables).

Times are seconds from the worker's start; the adapter ticks after every poll of the bus
(`BUS_POLL_TIMEOUT`, 0.5 s, when nothing arrives), so a healthy transcript ticks every 0.5 s
and the supervisor's heartbeat arrives every second.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gproxy_mp.bus.schema import EndpointsMessage, Heartbeat
from gproxy_mp.model import Endpoint
from gproxy_mp.worker.follower import (
    SUPERVISOR_TIMEOUT,
    Action,
    ApplyEndpoints,
    Event,
    Phase,
    RequestSnapshot,
    SendStatus,
    SupervisorLost,
    Tick,
    start,
    step,
)

ROUTE = "0"
EPOCH = "e1"
A = (Endpoint("10.0.0.1", 1),)
B = (Endpoint("10.0.0.2", 1),)


def snapshot(seq: int, endpoints: tuple[Endpoint, ...]) -> EndpointsMessage:
    return EndpointsMessage(epoch=EPOCH, seq=seq, route=ROUTE, target="t", endpoints=endpoints,
                            snapshot=True)


def update(seq: int, endpoints: tuple[Endpoint, ...]) -> EndpointsMessage:
    return EndpointsMessage(epoch=EPOCH, seq=seq, route=ROUTE, target="t", endpoints=endpoints)


def beat(seq: int) -> Heartbeat:
    return Heartbeat(epoch=EPOCH, seq=seq, routes={ROUTE: seq})


Line = tuple[Event, tuple[Action, ...]]
Transcript = tuple[Line, ...]


def starting(start_at: float, until: float) -> Transcript:
    """Ticks every half second before the first snapshot: a "starting" report each second."""
    count = round((until - start_at) / 0.5)
    ticks = (start_at + 0.5 * (i + 1) for i in range(count))
    return tuple((Tick(now), (SendStatus("starting", 0),) if now == int(now) else ())
                 for now in ticks)


def serving(start_at: float, until: float, *, seq: int = 1) -> Transcript:
    """A healthy ready worker: a heartbeat each second, a tick each half second, a status
    report on every whole second."""
    lines: list[Line] = []
    now = start_at
    while now < until:
        now += 0.5
        if now == int(now):
            lines.append((beat(seq), ()))
        lines.append((Tick(now), (SendStatus("ready", seq),) if now == int(now) else ()))
    return tuple(lines)


READY: Transcript = (
    (snapshot(1, A), (ApplyEndpoints(seq=1, before=None, endpoints=A),)),
    (Phase("ready"), (SendStatus("ready", 1),)),
)

SNAPSHOT_THEN_UPDATES: Transcript = (
    (snapshot(3, A), (ApplyEndpoints(seq=3, before=None, endpoints=A),)),
    (update(2, B), ()),  # older than the snapshot
    (update(3, B), ()),
    (update(4, B), (ApplyEndpoints(seq=4, before=A, endpoints=B),)),
)

UPDATE_BEFORE_THE_SNAPSHOT_IS_HELD: Transcript = (
    (update(5, B), ()),
    (snapshot(4, A), (ApplyEndpoints(seq=5, before=None, endpoints=B),)),
)

MISSED_UPDATE: Transcript = (
    (snapshot(3, A), (ApplyEndpoints(seq=3, before=None, endpoints=A),)),
    (beat(3), ()),
    (beat(5), (RequestSnapshot(missed=(3, 5)),)),
    (snapshot(5, B), (ApplyEndpoints(seq=5, before=A, endpoints=B),)),
    (beat(5), ()),
)

UNANSWERED_SNAPSHOT_IS_ASKED_AGAIN: Transcript = (
    *starting(0.0, 2.0),
    (Tick(2.5), (RequestSnapshot(),)),  # more than SNAPSHOT_RETRY_INTERVAL after the first
    *starting(2.5, 4.5),
    (Tick(5.0), (RequestSnapshot(), SendStatus("starting", 0))),
)

STATUS_EVERY_SECOND_FROM_THE_START: Transcript = (
    *starting(0.0, 2.0),  # waiting for the first snapshot, reporting all the same
    (snapshot(1, A), (ApplyEndpoints(seq=1, before=None, endpoints=A),)),
    (Phase("ready"), (SendStatus("ready", 1),)),
    *serving(2.0, 4.0),
    (Phase("draining"), (SendStatus("draining", 1),)),
    (Tick(4.5), ()),
    (Tick(5.0), (SendStatus("draining", 1),)),
)

SUPERVISOR_SILENT_WHILE_POLLING: Transcript = (
    *READY,
    *serving(0.0, 3.0),
    # From 3.0 on no heartbeat: lost after SUPERVISOR_TIMEOUT of polling, once.
    *((Tick(3.0 + 0.5 * i), (SendStatus("ready", 1),) if i % 2 == 0 else ())
      for i in range(1, 13)),
    (Tick(9.5), (SupervisorLost(silence=6.5),)),
    (Tick(10.0), (SendStatus("ready", 1),)),
    (beat(1), ()),  # too late: the worker is already stopping
    (Tick(10.5), ()),
)

SILENT_BEFORE_THE_FIRST_SNAPSHOT: Transcript = (
    *((Tick(0.5 * i), ((RequestSnapshot(),) if i in (5, 10) else ())
       + ((SendStatus("starting", 0),) if i % 2 == 0 else ())) for i in range(1, 13)),
    (Tick(6.5), (SupervisorLost(silence=6.5),)),
)

PAUSED_THEN_QUEUED_HEARTBEATS: Transcript = (
    *READY,
    *serving(0.0, 3.0),
    # SIGSTOP at 3.0, SIGCONT at 18.0: the first poll after it reads the queued heartbeats.
    *((beat(1), ()) for _ in range(15)),
    (Tick(18.0), (SendStatus("ready", 1),)),
    *serving(18.0, 20.0),
)

PAUSED_BEFORE_THE_QUEUE_IS_READ: Transcript = (
    *READY,
    *serving(0.0, 3.0),
    # The first poll after the pause finds nothing yet (ZeroMQ's I/O thread is catching up):
    # the pause counts as one tick's worth of silence, not 15 s.
    (Tick(18.0), (SendStatus("ready", 1),)),
    *((beat(1), ()) for _ in range(15)),
    (Tick(18.2), ()),
    *serving(18.0, 20.0),
)

STARVED_LOOP_IS_SLOW_TO_CALL_THE_SUPERVISOR_LOST: Transcript = (
    *READY,
    # Nothing from the supervisor, and each poll takes 3 s instead of 0.5 s (a starved loop):
    # each counts for at most MAX_TICK_CREDIT (1 s) of silence (the first none: it follows
    # the snapshot).
    *((Tick(3.0 * i), (SendStatus("ready", 1),)) for i in range(1, 8)),
    (Tick(24.0), (SupervisorLost(silence=7.0), SendStatus("ready", 1))),
)

AN_ENDPOINT_SET_IS_A_SIGN_OF_LIFE_TOO: Transcript = (
    *READY,
    *((Tick(0.5 * i), (SendStatus("ready", 1),) if i % 2 == 0 else ()) for i in range(1, 12)),
    (update(2, B), (ApplyEndpoints(seq=2, before=A, endpoints=B),)),
    *((Tick(5.5 + 0.5 * i), (SendStatus("ready", 2),) if i % 2 == 1 else ())
      for i in range(1, 12)),
)

TRANSCRIPTS = {
    "ready": READY,
    "snapshot-then-updates": SNAPSHOT_THEN_UPDATES,
    "update-before-the-snapshot-is-held": UPDATE_BEFORE_THE_SNAPSHOT_IS_HELD,
    "missed-update": MISSED_UPDATE,
    "unanswered-snapshot-is-asked-again": UNANSWERED_SNAPSHOT_IS_ASKED_AGAIN,
    "status-every-second-from-the-start": STATUS_EVERY_SECOND_FROM_THE_START,
    "supervisor-silent-while-polling": SUPERVISOR_SILENT_WHILE_POLLING,
    "silent-before-the-first-snapshot": SILENT_BEFORE_THE_FIRST_SNAPSHOT,
    "paused-then-queued-heartbeats": PAUSED_THEN_QUEUED_HEARTBEATS,
    "paused-before-the-queue-is-read": PAUSED_BEFORE_THE_QUEUE_IS_READ,
    "starved-loop-is-slow-to-call-the-supervisor-lost": (
        STARVED_LOOP_IS_SLOW_TO_CALL_THE_SUPERVISOR_LOST),
    "an-endpoint-set-is-a-sign-of-life-too": AN_ENDPOINT_SET_IS_A_SIGN_OF_LIFE_TOO,
}


def play(transcript: Sequence[Line]) -> list[str]:
    """Every line whose actions differ from the expected ones, described."""
    state, actions = start(ROUTE, now=0.0)
    assert actions == [RequestSnapshot(), SendStatus("starting", 0)]
    differences = []
    for index, (event, expected) in enumerate(transcript):
        state, actions = step(state, event)
        if tuple(actions) != expected:
            differences.append(f"line {index}: {event} -> {actions}, expected {list(expected)}")
    return differences


@pytest.mark.parametrize("transcript", TRANSCRIPTS.values(), ids=TRANSCRIPTS.keys())
def test_the_follower_acts_as_the_transcript_says(transcript: Transcript) -> None:
    assert play(transcript) == []


def test_a_pause_longer_than_the_timeout_is_not_supervisor_silence() -> None:
    """The pause transcripts are meaningful only if the pause is longer than the timeout."""
    assert 2 * SUPERVISOR_TIMEOUT < 18.0 - 3.0


def test_a_step_leaves_the_state_it_was_given_unchanged() -> None:
    state, _ = start(ROUTE, now=0.0)
    after, _ = step(state, snapshot(1, A))
    assert state.view.endpoints is None and state.view.seq == 0
    assert after.view.endpoints == A and after.view.seq == 1
