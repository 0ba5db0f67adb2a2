"""Locality: which backends a proxy prefers, from its node and zone, the Service's
trafficDistribution and the slices' hints (pure), and how workers rank them."""

from __future__ import annotations

from typing import Any

import pytest

from gproxy_mp.model import Endpoint, Locality, diff_endpoints
from gproxy_mp.supervisor.resolvers.locality import Here, Topology, place, preference
from gproxy_mp.supervisor.resolvers.slices import select_from_slices
from gproxy_mp.worker.balancer import FAILING, READY, UNKNOWN, RoundRobin, placed_rank

N1, N2, N3 = Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80), Endpoint("10.0.0.3", 80)
SPREAD = {N1: Topology("n1", "z1"), N2: Topology("n2", "z1"), N3: Topology("n3", "z2")}
HERE = Here("n1", "z1")


def placed(topology: dict[Endpoint, Topology], here: Here = HERE, *, mode: str = "auto",
           distribution: str | None = None) -> list[tuple[str, str, int]]:
    return [(e.host, e.locality.value, e.ring)
            for e in place(topology, here, mode=mode, distribution=distribution)]


CASES = [
    pytest.param("auto", "PreferSameNode", [("10.0.0.1", "same_node", 0),
                                            ("10.0.0.2", "same_zone", 1),
                                            ("10.0.0.3", "other", 2)], id="prefer-same-node"),
    pytest.param("auto", "PreferClose", [("10.0.0.1", "same_node", 0),
                                         ("10.0.0.2", "same_zone", 0),
                                         ("10.0.0.3", "other", 1)], id="prefer-close"),
    pytest.param("auto", "PreferSameZone", [("10.0.0.1", "same_node", 0),
                                            ("10.0.0.2", "same_zone", 0),
                                            ("10.0.0.3", "other", 1)], id="prefer-same-zone"),
    pytest.param("auto", None, [("10.0.0.1", "same_node", 0), ("10.0.0.2", "same_zone", 0),
                                ("10.0.0.3", "other", 0)], id="no-preference-shown-only"),
    pytest.param("node", None, [("10.0.0.1", "same_node", 0), ("10.0.0.2", "same_zone", 1),
                                ("10.0.0.3", "other", 2)], id="forced-node"),
    pytest.param("zone", "PreferSameNode", [("10.0.0.1", "same_node", 0),
                                            ("10.0.0.2", "same_zone", 0),
                                            ("10.0.0.3", "other", 1)], id="forced-zone"),
    pytest.param("off", "PreferSameNode", [("10.0.0.1", "none", 0), ("10.0.0.2", "none", 0),
                                           ("10.0.0.3", "none", 0)], id="off"),
]


@pytest.mark.parametrize(("mode", "distribution", "expected"), CASES)
def test_rings_follow_the_mode_and_the_services_traffic_distribution(
    mode: str, distribution: str | None, expected: list[tuple[str, str, int]]
) -> None:
    assert placed(SPREAD, mode=mode, distribution=distribution) == expected


def test_rings_are_dense_so_some_backend_is_always_in_ring_zero() -> None:
    away = {N2: Topology("n2", "z1"), N3: Topology("n3", "z2")}  # nothing on this node
    assert placed(away, distribution="PreferSameNode") == [
        ("10.0.0.2", "same_zone", 0), ("10.0.0.3", "other", 1)]


def test_a_proxy_that_does_not_know_where_it_runs_places_nothing() -> None:
    assert placed(SPREAD, Here(), distribution="PreferSameNode") == [
        ("10.0.0.1", "none", 0), ("10.0.0.2", "none", 0), ("10.0.0.3", "none", 0)]


def test_a_proxy_without_a_zone_still_prefers_its_node() -> None:
    assert placed(SPREAD, Here("n3", None), distribution="PreferSameNode") == [
        ("10.0.0.1", "other", 1), ("10.0.0.2", "other", 1), ("10.0.0.3", "same_node", 0)]


def test_zone_hints_decide_for_a_service_without_a_distribution() -> None:
    # The controller gave N3 (zone z2) to zone z1 for balance: hints rule over zones.
    hinted = {N1: Topology("n1", "z1", for_zones=("z1",)),
              N2: Topology("n2", "z2", for_zones=("z2",)),
              N3: Topology("n3", "z2", for_zones=("z1",))}
    assert placed(hinted) == [("10.0.0.1", "same_node", 0), ("10.0.0.2", "other", 1),
                              ("10.0.0.3", "other", 0)]


def test_hints_count_only_when_every_endpoint_has_them() -> None:
    partly = {N1: Topology("n1", "z1", for_zones=("z2",)), N2: Topology("n2", "z1"),
              N3: Topology("n3", "z2")}
    assert placed(partly, distribution="PreferClose") == [
        ("10.0.0.1", "same_node", 0), ("10.0.0.2", "same_zone", 0), ("10.0.0.3", "other", 1)]


def test_node_hints_decide_what_counts_as_this_nodes() -> None:
    hinted = {N1: Topology("n1", "z1", for_nodes=("n2",)), N2: Topology("n2", "z1",
                                                                         for_nodes=("n1",)),
              N3: Topology("n3", "z2", for_nodes=("n3",))}
    assert placed(hinted, distribution="PreferSameNode") == [
        ("10.0.0.1", "same_node", 1), ("10.0.0.2", "same_zone", 0), ("10.0.0.3", "other", 2)]


def test_preference_names() -> None:
    assert preference("auto", "PreferSameNode", zone_hints=False) == "node"
    assert preference("auto", "SomethingNew", zone_hints=False) == "none"
    assert preference("auto", "SomethingNew", zone_hints=True) == "zone"
    assert preference("off", "PreferClose", zone_hints=True) == "none"


def slice_entry(ip: str, node: str, zone: str, **hints: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": True},
                             "nodeName": node, "zone": zone}
    if hints:
        entry["hints"] = hints
    return entry


def test_slices_give_each_endpoints_node_zone_and_hints() -> None:
    slice_ = {"addressType": "IPv4", "ports": [{"name": "grpc", "port": 80}], "endpoints": [
        slice_entry("10.0.0.1", "n1", "z1", forZones=[{"name": "z1"}], forNodes=[{"name": "n1"}]),
        slice_entry("10.0.0.2", "n2", "z2")]}
    selection = select_from_slices({"s": slice_}, port="grpc", service_ports={})
    assert selection.topology == {
        N1: Topology("n1", "z1", for_nodes=("n1",), for_zones=("z1",)),
        N2: Topology("n2", "z2")}


def test_a_placement_change_is_no_added_or_removed_backend() -> None:
    before = (Endpoint("10.0.0.1", 80, Locality.OTHER, 1), Endpoint("10.0.0.2", 80))
    after = (Endpoint("10.0.0.1", 80, Locality.SAME_ZONE, 0), Endpoint("10.0.0.3", 80))
    diff = diff_endpoints(before, after)
    assert diff.added == (Endpoint("10.0.0.3", 80),)
    assert diff.removed == (Endpoint("10.0.0.2", 80),)


def test_workers_rank_health_first_then_ring_so_calls_spill_over() -> None:
    assert placed_rank(READY, 0) == READY  # the pickers' fast path
    order = sorted([(FAILING, 0), (READY, 1), (UNKNOWN, 0), (READY, 0), (READY, 2)],
                   key=lambda p: placed_rank(*p))
    assert order == [(READY, 0), (READY, 1), (READY, 2), (UNKNOWN, 0), (FAILING, 0)]
    ranks = {"local": placed_rank(READY, 0), "remote": placed_rank(READY, 1)}
    picker: RoundRobin[str] = RoundRobin()
    assert {picker.pick(["remote", "local"], rank=ranks.__getitem__) for _ in range(5)} == {
        "local"}
    down = {"local": placed_rank(FAILING, 0), "remote": placed_rank(READY, 1)}
    assert picker.pick(["remote", "local"], rank=down.__getitem__) == "remote"
