"""Which backends this proxy prefers: its node and zone against each endpoint's. Pure.

A node-level proxy knows where it runs (`--node-name`, `--zone` or the Node's
`topology.kubernetes.io/zone` label). For a `kubernetes://` target each endpoint gets a
`Locality` (same_node, same_zone, other: the `locality` label of call counters) and a ring
(workers prefer the lowest ring with a ready backend, `worker/balancer.py`). What is preferred
follows the Service, as kube-proxy does (`--locality auto`), or is forced:

    --locality   Service                                   rings
    off          (any)                                     everything 0, locality "none"
    node         (any)                                     same node 0, same zone 1, other 2
    zone         (any)                                     same zone (or node) 0, other 1
    auto         trafficDistribution: PreferSameNode       as node
    auto         trafficDistribution: PreferClose or       as zone
                 PreferSameZone, or zone hints on slices
    auto         none of these                             everything 0 (locality is shown)

Hints: where every endpoint carries `hints.forNodes` (or `hints.forZones`), they decide what
counts as this node's (zone's) instead of `nodeName` (`zone`), as in kube-proxy: the
EndpointSlice controller may assign an endpoint of another zone to ours for balance. Rings are
renumbered densely from 0, so some backend is always in ring 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from gproxy_mp.model import Endpoint, EndpointSet, Locality, build_endpoint_set

PREFER_NODE = frozenset({"PreferSameNode"})
PREFER_ZONE = frozenset({"PreferClose", "PreferSameZone"})


@dataclass(frozen=True, slots=True)
class Topology:
    """Where an endpoint runs, from its EndpointSlice entry."""

    node: str | None = None
    zone: str | None = None
    for_nodes: tuple[str, ...] | None = None  # hints.forNodes names; None without hints
    for_zones: tuple[str, ...] | None = None  # hints.forZones names; None without hints


@dataclass(frozen=True, slots=True)
class Here:
    """Where this proxy runs; None where unknown."""

    node: str | None = None
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class LocalityConfig:
    """`--locality`, `--node-name` and `--zone`, as a resolver needs them."""

    mode: str = "off"
    node: str | None = None
    zone: str | None = None


def preference(mode: str, distribution: str | None, *, zone_hints: bool) -> str:
    """"node", "zone" or "none": what `mode` (`--locality`) makes of the Service's
    `spec.trafficDistribution` and of zone hints on its slices."""
    if mode in ("node", "zone"):
        return mode
    if mode == "off":
        return "none"
    if distribution in PREFER_NODE:
        return "node"
    if distribution in PREFER_ZONE or zone_hints:
        return "zone"
    return "none"


def place(topology: Mapping[Endpoint, Topology], here: Here, *, mode: str,
          distribution: str | None) -> EndpointSet:
    """The endpoints of `topology` with their locality and ring set."""
    if mode == "off" or (here.node is None and here.zone is None):
        return build_endpoint_set(topology)
    places = list(topology.values())
    node_hints = bool(places) and all(t.for_nodes is not None for t in places)
    zone_hints = bool(places) and all(t.for_zones is not None for t in places)
    preferred = preference(mode, distribution, zone_hints=zone_hints)
    rings: dict[Endpoint, int] = {}
    for endpoint, where in topology.items():
        local_node = here.node is not None and (
            here.node in (where.for_nodes or ()) if node_hints else where.node == here.node)
        local_zone = here.zone is not None and (
            here.zone in (where.for_zones or ()) if zone_hints else where.zone == here.zone)
        if preferred == "node":
            rings[endpoint] = 0 if local_node else 1 if local_zone else 2
        elif preferred == "zone":
            rings[endpoint] = 0 if local_zone or local_node else 1
        else:
            rings[endpoint] = 0
    dense = {ring: index for index, ring in enumerate(sorted(set(rings.values())))}
    return build_endpoint_set(
        dataclasses.replace(endpoint, locality=_relation(topology[endpoint], here),
                            ring=dense[ring])
        for endpoint, ring in rings.items())


def _relation(where: Topology, here: Here) -> Locality:
    if here.node is not None and where.node == here.node:
        return Locality.SAME_NODE
    if here.zone is not None and where.zone == here.zone:
        return Locality.SAME_ZONE
    return Locality.OTHER
