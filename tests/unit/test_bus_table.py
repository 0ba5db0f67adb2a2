"""The clone pattern without I/O: the supervisor's numbered table and a worker's route view."""

from __future__ import annotations

import pytest

from gproxy_mp.bus.schema import EndpointsMessage, Heartbeat
from gproxy_mp.bus.table import EndpointTable, RouteView
from gproxy_mp.model import Endpoint, EndpointSet

A = (Endpoint("10.0.0.1", 1),)
B = (Endpoint("10.0.0.2", 1),)
C = (Endpoint("10.0.0.3", 1),)
AB = (*A, *B)


def test_each_changed_set_is_numbered_by_one_counter_across_routes() -> None:
    table = EndpointTable("e1")
    first = table.apply_set("0", target="t0", endpoints=A)
    second = table.apply_set("1", target="t1", endpoints=B)
    third = table.apply_set("0", target="t0", endpoints=AB)
    assert first == EndpointsMessage(epoch="e1", seq=1, route="0", target="t0", endpoints=A)
    assert second == EndpointsMessage(epoch="e1", seq=2, route="1", target="t1", endpoints=B)
    assert third == EndpointsMessage(epoch="e1", seq=3, route="0", target="t0", endpoints=AB)


def test_an_unchanged_set_is_not_published_again() -> None:
    table = EndpointTable("e1")
    table.apply_set("0", target="t0", endpoints=A)
    assert table.apply_set("0", target="t0", endpoints=A) is None
    assert table.seq == 1
    assert table.current("0") == (1, A)


def test_an_empty_set_is_a_change_worth_publishing() -> None:
    table = EndpointTable("e1")
    table.apply_set("0", target="t0", endpoints=A)
    message = table.apply_set("0", target="t0", endpoints=())
    assert message is not None
    assert message.endpoints == ()


def test_a_route_without_a_set_has_no_snapshot_yet() -> None:
    table = EndpointTable("e1")
    table.apply_set("1", target="t1", endpoints=A)
    assert table.snapshot("0") is None
    assert table.current("0") is None


def test_a_snapshot_carries_the_seq_of_the_routes_latest_set() -> None:
    table = EndpointTable("e1")
    table.apply_set("0", target="t0", endpoints=A)
    table.apply_set("1", target="t1", endpoints=B)
    assert table.snapshot("0") == EndpointsMessage(epoch="e1", seq=1, route="0", target="t0",
                                                   endpoints=A, snapshot=True)


def test_a_heartbeat_names_the_latest_seq_of_every_route() -> None:
    table = EndpointTable("e1")
    assert table.heartbeat() == Heartbeat(epoch="e1", seq=0, routes={})
    table.apply_set("0", target="t0", endpoints=A)
    table.apply_set("1", target="t1", endpoints=B)
    table.apply_set("0", target="t0", endpoints=C)
    assert table.heartbeat() == Heartbeat(epoch="e1", seq=3, routes={"0": 3, "1": 2})


# --- a worker's view: transcripts of (message arriving, set it returns) -------------------


def update(seq: int, endpoints: EndpointSet, *, epoch: str = "e1",
           route: str = "0") -> EndpointsMessage:
    return EndpointsMessage(epoch=epoch, seq=seq, route=route, target="t0", endpoints=endpoints)


def snapshot(seq: int, endpoints: EndpointSet, *, epoch: str = "e1") -> EndpointsMessage:
    return EndpointsMessage(epoch=epoch, seq=seq, route="0", target="t0", endpoints=endpoints,
                            snapshot=True)


Transcript = tuple[tuple[EndpointsMessage, EndpointSet | None], ...]

SNAPSHOT_FIRST: Transcript = (
    (snapshot(2, A), A),
    (update(3, B), B),
)
UPDATES_BEFORE_THE_SNAPSHOT_ARE_HELD_AND_THE_NEWEST_APPLIED: Transcript = (
    (update(3, B), None),
    (update(5, C), None),
    (update(4, AB), None),
    (snapshot(2, A), C),
)
UPDATES_OLDER_THAN_THE_SNAPSHOT_ARE_DROPPED: Transcript = (
    (update(2, B), None),
    (update(3, C), None),
    (snapshot(3, A), A),
    (update(3, B), None),
    (update(1, C), None),
    (update(4, AB), AB),
)
UPDATES_AFTER_THE_SNAPSHOT_APPLY_ONLY_WHEN_NEWER: Transcript = (
    (snapshot(2, A), A),
    (update(2, B), None),
    (update(1, C), None),
    (update(4, B), B),
    (update(3, C), None),
    (snapshot(4, C), None),
    (snapshot(5, C), C),
)
A_FOREIGN_EPOCH_IS_DROPPED: Transcript = (
    (snapshot(2, A), A),
    (update(9, B, epoch="e0"), None),
    (snapshot(9, B, epoch="e0"), None),
    (update(3, C), C),
)
A_HELD_UPDATE_OF_A_FOREIGN_EPOCH_IS_NOT_APPLIED: Transcript = (
    (update(9, B, epoch="e0"), None),
    (snapshot(2, A), A),
)
OTHER_ROUTES_ARE_IGNORED: Transcript = (
    (update(3, B, route="1"), None),
    (snapshot(2, A), A),
    (update(4, C, route="1"), None),
)

TRANSCRIPTS = {
    "snapshot first": SNAPSHOT_FIRST,
    "updates before the snapshot are held and the newest applied":
        UPDATES_BEFORE_THE_SNAPSHOT_ARE_HELD_AND_THE_NEWEST_APPLIED,
    "updates older than the snapshot are dropped": UPDATES_OLDER_THAN_THE_SNAPSHOT_ARE_DROPPED,
    "updates after the snapshot apply only when newer":
        UPDATES_AFTER_THE_SNAPSHOT_APPLY_ONLY_WHEN_NEWER,
    "a foreign epoch is dropped": A_FOREIGN_EPOCH_IS_DROPPED,
    "a held update of a foreign epoch is not applied":
        A_HELD_UPDATE_OF_A_FOREIGN_EPOCH_IS_NOT_APPLIED,
    "other routes are ignored": OTHER_ROUTES_ARE_IGNORED,
}


@pytest.mark.parametrize("transcript", list(TRANSCRIPTS.values()),
                         ids=list(TRANSCRIPTS))
def test_a_route_view_follows_the_clone_pattern(transcript: Transcript) -> None:
    view = RouteView("0")
    returned = [view.apply_message(message) for message, _ in transcript]
    assert returned == [expected for _, expected in transcript]


def test_a_route_view_serves_nothing_until_its_snapshot() -> None:
    view = RouteView("0")
    view.apply_message(update(3, B))
    assert not view.has_snapshot
    assert view.endpoints is None


def test_a_route_view_adopts_the_epoch_and_seq_it_applied() -> None:
    view = RouteView("0")
    view.apply_message(update(3, B))
    view.apply_message(snapshot(2, A))
    assert (view.epoch, view.seq, view.endpoints) == ("e1", 3, B)


def heartbeat(seq: int, *, epoch: str = "e1", route: str = "0") -> Heartbeat:
    return Heartbeat(epoch=epoch, seq=seq, routes={route: seq})


HEARTBEATS = [
    pytest.param(heartbeat(3), True, id="route-seq-ahead-re-ask"),
    pytest.param(heartbeat(2), False, id="route-seq-equal"),
    pytest.param(heartbeat(1), False, id="route-seq-behind"),
    pytest.param(heartbeat(3, route="1"), False, id="route-not-named"),
    pytest.param(heartbeat(3, epoch="e0"), False, id="foreign-epoch"),
]


@pytest.mark.parametrize(("beat", "re_ask"), HEARTBEATS)
def test_a_heartbeat_ahead_of_the_view_asks_for_a_new_snapshot(beat: Heartbeat,
                                                                re_ask: bool) -> None:
    view = RouteView("0")
    view.apply_message(snapshot(2, A))
    assert view.apply_heartbeat(beat) is re_ask


def test_a_heartbeat_before_the_snapshot_asks_for_nothing() -> None:
    view = RouteView("0")
    assert view.apply_heartbeat(heartbeat(3)) is False
