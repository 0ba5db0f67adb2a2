"""Round robin and least-request, each preferring READY backends over unknown ones over
failing ones."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gproxy_mp.worker.balancer import (
    BALANCERS,
    FAILING,
    READY,
    UNKNOWN,
    Ewma,
    LeastRequest,
    RoundRobin,
    Strikes,
    build_picker,
)

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


# --- least-request: power of two choices -------------------------------------------------

def least_request(load: dict[str, tuple[int, float]], *, seed: int = 7) -> LeastRequest[str]:
    return LeastRequest(load.__getitem__, choose=random.Random(seed).randrange)


def test_least_request_takes_the_lighter_of_two_and_so_never_the_heaviest() -> None:
    load = {"a": (5, 0.0), "b": (1, 0.0), "c": (3, 0.0)}
    picker = least_request(load)
    chosen = Counter(picker.pick(BACKENDS, rank=ranked().__getitem__) for _ in range(3000))
    assert "a" not in chosen  # the most loaded loses every draw it is in
    # b wins both draws it is in (2/3 of them); c wins the a-c draw (1/3).
    assert chosen["b"] == pytest.approx(2000, rel=0.1)
    assert chosen["c"] == pytest.approx(1000, rel=0.15)


def test_least_request_breaks_a_tie_of_calls_in_flight_by_response_time() -> None:
    load = {"a": (2, 0.300), "b": (2, 0.010)}
    picker = least_request(load)
    assert {picker.pick(("a", "b"), rank=lambda _: READY) for _ in range(50)} == {"b"}


def test_least_request_spreads_evenly_over_equal_backends() -> None:
    load = dict.fromkeys(BACKENDS, (0, 0.0))
    picker = least_request(load)
    chosen = Counter(picker.pick(BACKENDS, rank=ranked().__getitem__) for _ in range(3000))
    assert all(chosen[name] == pytest.approx(1000, rel=0.15) for name in BACKENDS), chosen


@pytest.mark.parametrize(("ranks", "expected"), PREFERENCES)
def test_least_request_prefers_the_best_rank_as_round_robin_does(
    ranks: dict[str, int], expected: str
) -> None:
    load = {"a": (0, 0.0), "b": (9, 1.0), "c": (9, 1.0)}  # load never beats a better rank
    picker = least_request(load)
    assert {picker.pick(BACKENDS, rank=ranks.__getitem__) for _ in range(30)} == {expected}


def test_least_request_skips_backends_already_tried_and_may_find_none() -> None:
    load = dict.fromkeys(BACKENDS, (0, 0.0))
    picker = least_request(load)
    assert {picker.pick(BACKENDS, rank=ranked().__getitem__, exclude={"a", "b"})
            for _ in range(30)} == {"c"}
    assert picker.pick(BACKENDS, rank=ranked().__getitem__, exclude=set(BACKENDS)) is None
    assert picker.pick((), rank=ranked().__getitem__) is None
    assert picker.pick(("a",), rank=ranked().__getitem__) == "a"


def test_least_request_compares_two_distinct_backends() -> None:
    # A chooser that always says 0 still yields two different backends: the lighter wins.
    load = {"a": (4, 0.0), "b": (0, 0.0), "c": (9, 0.0)}
    picker = LeastRequest(load.__getitem__, choose=lambda n: 0)
    assert picker.pick(BACKENDS, rank=ranked().__getitem__) == "b"


def test_the_response_time_average_follows_recent_samples_by_time() -> None:
    average = Ewma()
    assert average.value == 0.0  # unmeasured: tried first
    average.observe(0.100, now=0.0)
    assert average.value == pytest.approx(0.100)
    average.observe(0.500, now=0.001)  # a moment later: barely moves
    assert average.value == pytest.approx(0.100, abs=0.001)
    average.observe(0.500, now=100.0)  # ten decay times later: the new sample rules
    assert average.value == pytest.approx(0.500, abs=0.001)


def test_a_balancer_is_built_by_name() -> None:
    assert isinstance(build_picker("round-robin", lambda b: (0, 0.0)), RoundRobin)
    assert isinstance(build_picker("least-request", lambda b: (0, 0.0)), LeastRequest)
    assert set(BALANCERS) == {"round-robin", "least-request"}
    with pytest.raises(ValueError, match="unknown balancer"):
        build_picker("random", lambda b: (0, 0.0))
