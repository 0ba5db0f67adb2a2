"""EndpointSlices → endpoint set: the one module that reads Kubernetes endpoint JSON. Pure.

The rules (KEP-1669, kube-proxy's behaviour, and where popular resolvers went wrong):

- All slices of the Service are merged (one Service can have many: ≤100 endpoints each by
  default, one per address family and port set); duplicates across slices count once.
- `conditions.ready` nil counts as ready. When no endpoint is ready, endpoints that are
  `serving` and `terminating` are used instead, so a rollout that terminates every pod at once
  still drains gracefully. `serving` nil defers to `ready`; `terminating` nil is false.
- Address types IPv4 and IPv6 are used; FQDN slices (deprecated) are ignored and reported.
  The first address of an endpoint is used (the others are fungible by definition).
- Ports are chosen per slice, because a named `targetPort` can resolve to different numbers on
  different pods: a port *name* matches the slice port of that name; a port *number* is first
  looked up among the Service's ports (`spec.ports[].port` → its name → the slice port of that
  name), and otherwise used as the backend port as it is.
- core/v1 Endpoints (the fallback where EndpointSlices are not served) use `subsets[]`:
  `addresses` are ready, `notReadyAddresses` are not, ports chosen by the same name rule.
- Each chosen endpoint's `Topology` (nodeName, zone, hints.forNodes, hints.forZones) is kept
  for `locality.place`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gproxy_mp.model import Endpoint, EndpointSet, build_endpoint_set
from gproxy_mp.supervisor.resolvers.locality import Topology

Json = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Selection:
    """The endpoints chosen from a Service's slices, and what was left out and why."""

    endpoints: EndpointSet
    fallback: bool = False  # True: nothing was ready, serving+terminating endpoints were used
    ignored_fqdn_slices: tuple[str, ...] = ()
    slices_without_port: tuple[str, ...] = ()
    per_slice: dict[str, int] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per chosen `host:port`: its conditions, zone, node and slice, for /debug/endpoints."""
    topology: dict[Endpoint, Topology] = field(default_factory=dict)
    """Where each chosen endpoint runs."""


def service_port_names(service: Json | None) -> dict[int, str]:
    """`spec.ports[].port` → `spec.ports[].name` ("" for an unnamed single port)."""
    if not service:
        return {}
    ports = (service.get("spec") or {}).get("ports") or []
    return {int(p["port"]): p.get("name") or "" for p in ports if p.get("port") is not None}


def backend_port(ports: Iterable[Json], wanted: int | str,
                 service_ports: Mapping[int, str]) -> int | None:
    """The backend port for `wanted` among one slice's (or subset's) `ports`."""
    if isinstance(wanted, int):
        name = service_ports.get(wanted)
        if name is None:
            return wanted  # not a Service port: a target port, used as it is
    else:
        name = wanted
    for port in ports:
        if (port.get("name") or "") == name and port.get("port") is not None:
            return int(port["port"])
    return None


def select_from_slices(slices: Mapping[str, Json], *, port: int | str,
                       service_ports: Mapping[int, str]) -> Selection:
    ready: set[Endpoint] = set()
    draining: set[Endpoint] = set()
    fqdn: list[str] = []
    portless: list[str] = []
    per_slice: dict[str, int] = {}
    details: dict[str, dict[str, Any]] = {}
    topology: dict[Endpoint, Topology] = {}
    for name, slice_ in sorted(slices.items()):
        if slice_.get("addressType") not in ("IPv4", "IPv6"):
            fqdn.append(name)
            continue
        number = backend_port(slice_.get("ports") or [], port, service_ports)
        if number is None:
            portless.append(name)
            continue
        count = 0
        for endpoint in slice_.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            conditions = endpoint.get("conditions") or {}
            is_ready = conditions.get("ready") is not False
            serving = conditions.get("serving")
            is_serving = is_ready if serving is None else serving is True
            is_terminating = conditions.get("terminating") is True
            chosen = Endpoint(str(addresses[0]), number)
            if is_ready or (is_serving and is_terminating):
                details[chosen.address] = {
                    "ready": is_ready, "serving": is_serving, "terminating": is_terminating,
                    "zone": endpoint.get("zone"), "node": endpoint.get("nodeName"),
                    "slice": name}
                topology[chosen] = _topology(endpoint)
            if is_ready:
                ready.add(chosen)
                count += 1
            elif is_serving and is_terminating:
                draining.add(chosen)
        per_slice[name] = count
    endpoints = build_endpoint_set(ready or draining)
    return Selection(
        endpoints=endpoints,
        fallback=not ready and bool(draining),
        details={e.address: details[e.address] for e in endpoints},
        topology={e: topology[e] for e in endpoints},
        ignored_fqdn_slices=tuple(fqdn),
        slices_without_port=tuple(portless),
        per_slice=per_slice,
    )


def _topology(endpoint: Json) -> Topology:
    hints = endpoint.get("hints") or {}

    def names(key: str) -> tuple[str, ...] | None:
        if key not in hints:
            return None
        return tuple(str(h.get("name")) for h in hints.get(key) or [] if h.get("name"))

    return Topology(node=endpoint.get("nodeName"), zone=endpoint.get("zone"),
                    for_nodes=names("forNodes"), for_zones=names("forZones"))


def select_from_endpoints(endpoints: Json | None, *, port: int | str,
                          service_ports: Mapping[int, str]) -> Selection:
    """The same choice from a core/v1 Endpoints object (ready addresses only)."""
    topology: dict[Endpoint, Topology] = {}
    for subset in (endpoints or {}).get("subsets") or []:
        number = backend_port(subset.get("ports") or [], port, service_ports)
        if number is None:
            continue
        for address in subset.get("addresses") or []:
            if address.get("ip"):
                topology[Endpoint(str(address["ip"]), number)] = Topology(
                    node=address.get("nodeName"))
    return Selection(endpoints=build_endpoint_set(topology), topology=topology)
