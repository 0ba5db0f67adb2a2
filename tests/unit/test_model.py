"""Endpoints and endpoint sets: addresses, canonical sets and their differences."""

from __future__ import annotations

import pytest

from gproxy_mp.model import Endpoint, build_endpoint_set, diff_endpoints

A, B, C = Endpoint("10.0.0.1", 1), Endpoint("10.0.0.2", 1), Endpoint("10.0.0.3", 1)

ADDRESSES = [
    (Endpoint("10.0.0.1", 50051), "10.0.0.1:50051"),
    (Endpoint("backend", 80), "backend:80"),
    (Endpoint("::1", 50051), "[::1]:50051"),
    (Endpoint("2001:db8::1", 443), "[2001:db8::1]:443"),
]


@pytest.mark.parametrize(("endpoint", "address"), ADDRESSES)
def test_an_endpoint_address_brackets_v6_literals(endpoint: Endpoint, address: str) -> None:
    assert endpoint.address == address
    assert str(endpoint) == address


def test_an_endpoint_set_is_deduplicated_and_sorted() -> None:
    assert build_endpoint_set([C, A, B, A, C]) == (A, B, C)


def test_endpoint_sets_of_the_same_backends_are_equal_whatever_the_order() -> None:
    assert build_endpoint_set([B, A]) == build_endpoint_set([A, B, B])
    assert hash(build_endpoint_set([B, A])) == hash(build_endpoint_set([A, B]))


def test_an_empty_endpoint_set_is_empty() -> None:
    assert build_endpoint_set([]) == ()


def test_endpoints_of_one_host_sort_by_port_number() -> None:
    assert build_endpoint_set([Endpoint("h", 10), Endpoint("h", 9)]) == (
        Endpoint("h", 9), Endpoint("h", 10))


DIFFS = [
    ((A, B), (B, C), (C,), (A,)),
    ((), (B, A), (A, B), ()),
    ((C, A), (), (), (A, C)),
    ((A, B), (B, A), (), ()),
]


@pytest.mark.parametrize(("old", "new", "added", "removed"), DIFFS)
def test_a_diff_names_the_added_and_removed_endpoints_sorted(
    old: tuple[Endpoint, ...], new: tuple[Endpoint, ...],
    added: tuple[Endpoint, ...], removed: tuple[Endpoint, ...],
) -> None:
    diff = diff_endpoints(old, new)
    assert (diff.added, diff.removed) == (added, removed)
    assert bool(diff) == bool(added or removed)
