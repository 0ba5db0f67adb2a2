"""A worker's bus follower as a pure step: `step(state, event) -> (state, actions)`.

What a worker does about each bus message and each tick of its clock, without I/O: the adapter
in `worker/main.py` owns the bus sockets and the clock, feeds every received message and then
a `Tick` after each poll of the bus, and executes the actions. Times are float seconds of a
monotonic clock, passed in; every timer lives in the state.

    event                          actions
    -----------------------------  --------------------------------------------------------
    (start)                        RequestSnapshot, SendStatus(STARTING)
    EndpointsMessage               ApplyEndpoints when it replaces the served set
    Heartbeat                      RequestSnapshot when it shows a missed update
    Tick(now)                      RequestSnapshot (no snapshot yet, every SNAPSHOT_RETRY_INTERVAL)
                                   SendStatus (every STATUS_INTERVAL, from the start: the
                                   supervisor's watchdog times a starting worker too)
                                   SupervisorLost (once: SUPERVISOR_TIMEOUT of polled silence)
    Phase(state)                   SendStatus at once (the worker's lifecycle state changed)

Supervisor silence is counted in time the worker spent *polling* the bus, not in wall time:
each tick adds the time since the previous tick, but at most `MAX_TICK_CREDIT`. A worker that
was paused (SIGSTOP, a long GC, CPU starvation) did not poll meanwhile, so the pause costs it
one tick's credit, and the heartbeats queued in its SUB socket meanwhile, read in the next
polls, prove the supervisor alive. Any message from the supervisor (a heartbeat or an
endpoint set) ends a silence, and the tick that follows it adds nothing (the message came
during that poll).

The route's clone-pattern view (`bus.table.RouteView`) is part of the state; it is copied, not
changed, by a step.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from gproxy_mp.bus.schema import EndpointsMessage, Heartbeat, Message, WorkerState
from gproxy_mp.bus.table import RouteView
from gproxy_mp.model import EndpointSet

SUPERVISOR_TIMEOUT = 6.0
"""Seconds of polling the bus without a word from the supervisor (it sends a heartbeat every
second) after which it counts as gone."""
SNAPSHOT_RETRY_INTERVAL = 2.0
"""Seconds between snapshot requests while none has been answered."""
STATUS_INTERVAL = 1.0
"""Seconds between status reports to the supervisor."""
BUS_POLL_TIMEOUT = 0.5
"""Seconds one bus poll may wait: bounds how late a missing heartbeat is noticed."""
MAX_TICK_CREDIT = 2 * BUS_POLL_TIMEOUT
"""Seconds one tick may add to the supervisor's silence. A poll that took longer than twice
its timeout means the worker itself was not running (paused or starved), which says nothing
about the supervisor."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The adapter polled the bus and handed over what it read; `now` is its clock."""

    now: float


@dataclass(frozen=True, slots=True)
class Phase:
    """The worker's lifecycle state changed."""

    state: WorkerState


Event = Message | Tick | Phase


@dataclass(frozen=True, slots=True)
class ApplyEndpoints:
    """Serve `endpoints` (seq `seq`) instead of `before` (None before the first snapshot)."""

    seq: int
    before: EndpointSet | None
    endpoints: EndpointSet


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Ask the supervisor for the route's current set; `missed` = (our seq, the latest seq)
    when a heartbeat showed a missed update."""

    missed: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class SendStatus:
    state: WorkerState
    seq: int


@dataclass(frozen=True, slots=True)
class SupervisorLost:
    """Nothing from the supervisor for `silence` seconds of polling."""

    silence: float


Action = ApplyEndpoints | RequestSnapshot | SendStatus | SupervisorLost


@dataclass(frozen=True, slots=True)
class FollowerState:
    view: RouteView
    last_tick: float
    last_ask: float
    last_report: float
    silence: float = 0.0  # seconds of polling since the supervisor was last heard
    heard: bool = False  # the supervisor was heard since the last tick
    phase: WorkerState = WorkerState.STARTING
    lost: bool = False  # SupervisorLost was emitted (once)


def start(route: str, *, now: float) -> tuple[FollowerState, list[Action]]:
    """The state of a worker that has just subscribed, its first snapshot request and its
    first report."""
    state = FollowerState(view=RouteView(route), last_tick=now, last_ask=now, last_report=now)
    return state, [RequestSnapshot(), SendStatus(state=state.phase, seq=0)]


def step(state: FollowerState, event: Event) -> tuple[FollowerState, list[Action]]:
    match event:
        case EndpointsMessage():
            view = copy.copy(state.view)
            before = view.endpoints
            endpoints = view.apply_message(event)
            state = dataclasses.replace(state, view=view, silence=0.0, heard=True)
            if endpoints is None:
                return state, []
            return state, [ApplyEndpoints(seq=view.seq, before=before, endpoints=endpoints)]
        case Heartbeat():
            state = dataclasses.replace(state, silence=0.0, heard=True)
            if state.view.apply_heartbeat(event):
                latest = event.routes.get(state.view.route, 0)
                return state, [RequestSnapshot(missed=(state.view.seq, latest))]
            return state, []
        case Tick():
            return _tick(state, event.now)
        case Phase():
            # Reported now; the last tick is as close to now as this step knows.
            state = dataclasses.replace(state, phase=event.state, last_report=state.last_tick)
            return state, [SendStatus(state=event.state, seq=state.view.seq)]
    return state, []  # other kinds (a snapshot request, a status) are not for workers


def _tick(state: FollowerState, now: float) -> tuple[FollowerState, list[Action]]:
    credit = 0.0 if state.heard else min(max(now - state.last_tick, 0.0), MAX_TICK_CREDIT)
    state = dataclasses.replace(state, last_tick=now, silence=state.silence + credit,
                                heard=False)
    actions: list[Action] = []
    if not state.lost and state.silence > SUPERVISOR_TIMEOUT:
        state = dataclasses.replace(state, lost=True)
        actions.append(SupervisorLost(silence=state.silence))
    if not state.view.has_snapshot and now - state.last_ask > SNAPSHOT_RETRY_INTERVAL:
        state = dataclasses.replace(state, last_ask=now)
        actions.append(RequestSnapshot())
    if now - state.last_report >= STATUS_INTERVAL:
        state = dataclasses.replace(state, last_report=now)
        actions.append(SendStatus(state=state.phase, seq=state.view.seq))
    return state, actions
