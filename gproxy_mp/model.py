"""Endpoints and endpoint sets: the values that flow from resolvers over the bus to workers.

Pure data: frozen, hashable, ordered, so two sets compare equal exactly when they hold the same
backends, placed the same, and an unchanged answer from a resolver can be recognised and dropped.
A backend is identified by its address (`host`, `port`); its placement (`locality`, `ring`)
can change without it being another backend, so `diff_endpoints` compares addresses only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Locality(enum.StrEnum):
    """Where a backend runs, seen from this proxy (the `locality` label of call counters)."""

    SAME_NODE = "same_node"
    SAME_ZONE = "same_zone"
    OTHER = "other"
    NONE = "none"  # locality is off, or not known for this target


@dataclass(frozen=True, order=True, slots=True)
class Endpoint:
    """One backend address. `host` is an IP literal or a name, without brackets.

    `ring` is the backend's preference for this proxy: workers pick among the ready backends of
    the lowest ring and spill over to the next only when none is ready (`worker/balancer.py`);
    0 everywhere when locality is off."""

    host: str
    port: int
    locality: Locality = Locality.NONE
    ring: int = 0

    @property
    def address(self) -> str:
        """`host:port`, or `[v6]:port` for IPv6 literals: what gRPC and users read."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.address


EndpointSet = tuple[Endpoint, ...]
"""A route's full backend set: sorted and without duplicates (see `build_endpoint_set`)."""


def build_endpoint_set(endpoints: Iterable[Endpoint]) -> EndpointSet:
    """The canonical form of a set of endpoints: deduplicated and sorted."""
    return tuple(sorted(set(endpoints)))


@dataclass(frozen=True, slots=True)
class EndpointDiff:
    added: EndpointSet
    removed: EndpointSet

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def diff_endpoints(old: Iterable[Endpoint], new: Iterable[Endpoint]) -> EndpointDiff:
    """Which backends (by address) came and went between two sets, each side sorted; a backend
    whose placement changed is in neither."""
    old_by_address = {(e.host, e.port): e for e in old}
    new_by_address = {(e.host, e.port): e for e in new}
    return EndpointDiff(
        added=build_endpoint_set(e for a, e in new_by_address.items() if a not in old_by_address),
        removed=build_endpoint_set(e for a, e in old_by_address.items() if a not in new_by_address),
    )
