"""Round robin that prefers READY backends over unknown ones over failing ones."""

from __future__ import annotations

from collections import Counter

import pytest

from gproxy_mp.worker.balancer import FAILING, READY, UNKNOWN, RoundRobin, Strikes

BACKENDS = ("a", "b", "c")


def ranked(**ranks: int) -> dict[str, int]:
    return {name: ranks.get(name, READY) for name in BACKENDS}


def picks(count: int, ranks: dict[str, int], *, exclude: frozenset[str] = frozenset(),
          backends: tuple[str, ...] = BACKENDS) -> list[str | None]:
    picker: RoundRobin[str] = RoundRobin()
    return [picker.pick(backends, rank=ranks.__getitem__, exclude=exclude) for _ in range(count)]


def test_ready_backends_take_calls_strictly_in_turn() -> None:
    assert picks(7, ranked()) == ["a", "b", "c", "a", "b", "c", "a"]


PREFERENCES = [
    (ranked(a=FAILING, b=UNKNOWN, c=READY), "c"),
    (ranked(a=UNKNOWN, b=READY, c=FAILING), "b"),
    (ranked(a=FAILING, b=UNKNOWN, c=FAILING), "b"),
    (ranked(a=FAILING, b=FAILING, c=UNKNOWN), "c"),
]


@pytest.mark.parametrize(("ranks", "chosen"), PREFERENCES)
def test_ready_is_preferred_over_unknown_over_failing(ranks: dict[str, int], chosen: str) -> None:
    assert set(picks(6, ranks)) == {chosen}


def test_backends_of_the_same_rank_share_calls_in_turn() -> None:
    assert picks(4, ranked(a=UNKNOWN, b=UNKNOWN, c=FAILING)) == ["a", "b", "a", "b"]


def test_failing_backends_still_take_calls_when_nothing_better_exists() -> None:
    assert picks(4, ranked(a=FAILING, b=FAILING, c=FAILING)) == ["a", "b", "c", "a"]


def test_backends_already_tried_by_the_call_are_skipped() -> None:
    assert picks(4, ranked(), exclude=frozenset({"a"})) == ["b", "c", "b", "c"]


def test_an_excluded_ready_backend_loses_to_a_failing_one() -> None:
    assert set(picks(3, ranked(b=FAILING, c=FAILING), exclude=frozenset({"a"}))) == {"b", "c"}


def test_no_backends_means_no_pick() -> None:
    assert picks(2, {}, backends=()) == [None, None]


def test_all_backends_excluded_means_no_pick() -> None:
    assert picks(2, ranked(), exclude=frozenset(BACKENDS)) == [None, None]


def test_a_failing_backend_among_ready_ones_gets_no_calls_and_the_rest_share_evenly() -> None:
    counts = Counter(picks(3000, ranked(b=FAILING)))
    assert counts == {"a": 1500, "c": 1500}


def test_the_rotation_survives_a_shrinking_backend_list() -> None:
    picker: RoundRobin[str] = RoundRobin()
    ranks = ranked()
    assert [picker.pick(BACKENDS, rank=ranks.__getitem__) for _ in range(3)] == ["a", "b", "c"]
    assert [picker.pick(("a", "b"), rank=ranks.__getitem__) for _ in range(3)] == ["b", "a", "b"]


def test_a_struck_backend_is_penalised_for_a_doubling_time_up_to_the_maximum() -> None:
    strikes = Strikes()
    penalties = []
    for _ in range(8):
        strikes.strike(100.0)
        penalties.append(strikes.until - 100.0)
    assert penalties == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert strikes.active(109.9) and not strikes.active(110.0)


def test_an_answer_clears_the_strikes() -> None:
    strikes = Strikes()
    strikes.strike(0.0)
    strikes.strike(0.0)
    strikes.clear()
    assert not strikes.active(0.0)
    strikes.strike(0.0)
    assert strikes.until == 0.5
