"""Endpoints and endpoint sets: the values that flow from resolvers over the bus to workers.

Pure data: frozen, hashable, ordered, so two sets compare equal exactly when they hold the same
backends and an unchanged answer from a resolver can be recognised and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class Endpoint:
    """One backend address. `host` is an IP literal or a name, without brackets."""

    host: str
    port: int

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
    """What changed between two sets, each side sorted."""
    old_set, new_set = set(old), set(new)
    return EndpointDiff(
        added=build_endpoint_set(new_set - old_set),
        removed=build_endpoint_set(old_set - new_set),
    )
