"""`gproxy-mp --check`: validate a configuration against the world it will run in, then exit.

For each distinct target: resolve it once (a static list as it is, one DNS lookup, one list of
the Service's EndpointSlices), and for Kubernetes targets ask the API server, with a
SelfSubjectAccessReview per verb, whether this identity may get, list and watch
endpointslices.discovery.k8s.io (and get services, for numeric ports or `--locality auto` with
a node or zone) in the target's namespace, and get nodes (for the node's zone: `--node-name`
without `--zone`). Every listen address and the admin address are bound and released at once,
as the start would bind them (a taken one names its holder: `probes.probe_address`), and each
endpoint a target resolved to gets one TCP connection (`probes.probe_endpoints`): one that does
not accept is a warning row, with a summary row per target, since backends come and go and the
proxy routes around them. Prints one row per check; the exit code is 0 only if every check
passed (warnings pass). Nothing is started, nothing stays bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gproxy_mp.config import DnsTarget, KubernetesTarget, Settings, StaticTarget, Target
from gproxy_mp.errors import ExitCode
from gproxy_mp.model import Endpoint
from gproxy_mp.supervisor.probes import probe_address, probe_endpoints

DNS_CHECK_TIMEOUT = 10.0
"""Seconds one DNS lookup may take in a check."""


@dataclass(frozen=True, slots=True)
class CheckRow:
    target: str
    check: str
    ok: bool
    detail: str
    warning: bool = False  # passed, but worth a look: a backend that does not accept TCP


async def run_check(settings: Settings) -> list[CheckRow]:
    rows = _check_addresses(settings)
    for target in settings.targets:
        found, endpoints = await _check_target(target, settings)
        rows += found
        if endpoints:
            rows += await _check_reach(str(target), endpoints)
    return rows


def _check_addresses(settings: Settings) -> list[CheckRow]:
    rows = []
    for route in settings.routes:
        problem = probe_address(route.listen, what="listen address")
        rows.append(CheckRow(route.name, "listen address free", problem is None,
                             problem or "bound and released"))
    if settings.admin is not None:
        problem = probe_address(settings.admin, what="--admin-address")
        rows.append(CheckRow(str(settings.admin), "--admin-address free", problem is None,
                             problem or "bound and released"))
    return rows


async def _check_reach(name: str, endpoints: tuple[Endpoint, ...]) -> list[CheckRow]:
    reaches, untried = await probe_endpoints(endpoints)
    rows = [CheckRow(name, f"connect to {r.endpoint.address}", True, r.error, warning=True)
            for r in reaches if r.error is not None]
    accepted = sum(r.error is None for r in reaches)
    summary = f"{accepted} of {len(reaches)} endpoints accept TCP connections"
    if untried:
        summary += f"; {untried} more not tried"
    rows.append(CheckRow(name, "connect to the endpoints", True, summary,
                         warning=accepted < len(reaches)))
    return rows


async def _check_target(target: Target,
                        settings: Settings) -> tuple[list[CheckRow], tuple[Endpoint, ...]]:
    """The target's rows, and the endpoints it resolved to."""
    name = str(target)
    match target:
        case StaticTarget():
            listed = ", ".join(e.address for e in target.endpoints)
            return [CheckRow(name, "endpoints", True, listed)], target.endpoints
        case DnsTarget():
            row, addresses = await _check_dns(target)
            return [row], tuple(Endpoint(a, target.port) for a in addresses)
        case KubernetesTarget():
            return await asyncio.to_thread(_check_kubernetes, target, settings)


async def _check_dns(target: DnsTarget) -> tuple[CheckRow, list[str]]:
    from gproxy_mp.supervisor.resolvers.dns import (  # noqa: PLC0415
        TemporaryDnsError,
        build_lookup,
    )

    name, server = str(target), target.server.address if target.server else "system resolver"
    try:
        async with asyncio.timeout(DNS_CHECK_TIMEOUT):
            addresses = await build_lookup(target)(target.host)
    except (TemporaryDnsError, TimeoutError) as e:
        return CheckRow(name, f"resolve {target.host} ({server})", False,
                        str(e) or "timeout"), []
    if not addresses:
        return CheckRow(name, f"resolve {target.host} ({server})", False,
                        "no such name, or no A/AAAA records"), []
    found = sorted(set(addresses))
    return CheckRow(name, f"resolve {target.host} ({server})", True, ", ".join(found)), found


def _check_kubernetes(target: KubernetesTarget,
                      settings: Settings) -> tuple[list[CheckRow], tuple[Endpoint, ...]]:
    # Imported here: the Kubernetes client is only loaded for Kubernetes targets.
    from gproxy_mp.supervisor.resolvers.kubeapi import (  # noqa: PLC0415
        ENDPOINT_SLICES,
        NODES,
        SERVICES,
        KubeApiError,
    )
    from gproxy_mp.supervisor.resolvers.kubernetes import build_api_factory  # noqa: PLC0415
    from gproxy_mp.supervisor.resolvers.slices import (  # noqa: PLC0415
        select_from_slices,
        service_port_names,
    )

    name = str(target)
    api = build_api_factory(target, kubeconfig=settings.kubeconfig)()
    rows: list[CheckRow] = []
    try:
        needed = [(verb, ENDPOINT_SLICES) for verb in ("get", "list", "watch")]
        follows = settings.locality == "auto" and bool(settings.node_name or settings.zone)
        if isinstance(target.port, int) or follows:
            needed.append(("get", SERVICES))
        if settings.locality != "off" and settings.node_name and not settings.zone:
            needed.append(("get", NODES))
        for verb, resource in needed:
            check = (f"{verb} {resource}" if resource is NODES
                     else f"{verb} {resource} in namespace {api.namespace}")
            try:
                allowed, reason = api.allowed(verb, resource)
            except KubeApiError as e:
                rows.append(CheckRow(name, check, False, str(e)))
                continue
            rows.append(CheckRow(name, check, allowed,
                                 reason or ("allowed" if allowed else "denied: grant it")))
        check = f"list the endpoints of Service {target.service}"
        try:
            service_ports = {}
            if isinstance(target.port, int):
                service_ports = service_port_names(api.get_service(target.service))
            items, _ = api.list(ENDPOINT_SLICES,
                                selector=f"kubernetes.io/service-name={target.service}")
        except KubeApiError as e:
            rows.append(CheckRow(name, check, False, str(e)))
            return rows, ()
        selection = select_from_slices({str(i.get("metadata", {}).get("name")): i for i in items},
                                       port=target.port, service_ports=service_ports)
        found = ", ".join(e.address for e in selection.endpoints)
        rows.append(CheckRow(name, check, bool(selection.endpoints),
                             f"{len(items)} slices, {len(selection.endpoints)} endpoints"
                             + (f": {found}" if found else " (calls would fail UNAVAILABLE)")))
    finally:
        api.close()
    return rows, selection.endpoints


def render_check(rows: list[CheckRow]) -> str:
    width_target = max([len("target"), *(len(r.target) for r in rows)])
    width_check = max([len("check"), *(len(r.check) for r in rows)])
    lines = [f"{'target':<{width_target}}  {'check':<{width_check}}  result"]
    for row in rows:
        verdict = "FAIL" if not row.ok else "WARN" if row.warning else "ok"
        lines.append(f"{row.target:<{width_target}}  {row.check:<{width_check}}  "
                     f"{verdict}: {row.detail}")
    failed = sum(not r.ok for r in rows)
    warned = sum(r.ok and r.warning for r in rows)
    lines.append(f"{len(rows)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines)


def check_exit_code(rows: list[CheckRow]) -> int:
    return ExitCode.OK if all(r.ok for r in rows) else ExitCode.RUNTIME
