"""`gproxy-mp --check`: validate a configuration against the world it will run in, then exit.

For each distinct target: resolve it once (a static list as it is, one DNS lookup, one list of
the Service's EndpointSlices), and for Kubernetes targets ask the API server, with a
SelfSubjectAccessReview per verb, whether this identity may get, list and watch
endpointslices.discovery.k8s.io (and get services, for numeric ports or `--locality auto` with
a node or zone) in the target's namespace, and get nodes (for the node's zone: `--node-name`
without `--zone`). Prints one row per check; the exit code is 0 only if every check passed.
Nothing is started, nothing is bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gproxy_mp.config import DnsTarget, KubernetesTarget, Settings, StaticTarget, Target
from gproxy_mp.errors import ExitCode

DNS_CHECK_TIMEOUT = 10.0
"""Seconds one DNS lookup may take in a check."""


@dataclass(frozen=True, slots=True)
class CheckRow:
    target: str
    check: str
    ok: bool
    detail: str


async def run_check(settings: Settings) -> list[CheckRow]:
    rows: list[CheckRow] = []
    for target in settings.targets:
        rows += await _check_target(target, settings)
    return rows


async def _check_target(target: Target, settings: Settings) -> list[CheckRow]:
    name = str(target)
    match target:
        case StaticTarget():
            listed = ", ".join(e.address for e in target.endpoints)
            return [CheckRow(name, "endpoints", True, listed)]
        case DnsTarget():
            return [await _check_dns(target)]
        case KubernetesTarget():
            return await asyncio.to_thread(_check_kubernetes, target, settings)


async def _check_dns(target: DnsTarget) -> CheckRow:
    from gproxy_mp.supervisor.resolvers.dns import (  # noqa: PLC0415
        TemporaryDnsError,
        build_lookup,
    )

    name, server = str(target), target.server.address if target.server else "system resolver"
    try:
        async with asyncio.timeout(DNS_CHECK_TIMEOUT):
            addresses = await build_lookup(target)(target.host)
    except (TemporaryDnsError, TimeoutError) as e:
        return CheckRow(name, f"resolve {target.host} ({server})", False, str(e) or "timeout")
    if not addresses:
        return CheckRow(name, f"resolve {target.host} ({server})", False,
                        "no such name, or no A/AAAA records")
    return CheckRow(name, f"resolve {target.host} ({server})", True,
                    ", ".join(sorted(set(addresses))))


def _check_kubernetes(target: KubernetesTarget, settings: Settings) -> list[CheckRow]:
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
            return rows
        selection = select_from_slices({str(i.get("metadata", {}).get("name")): i for i in items},
                                       port=target.port, service_ports=service_ports)
        found = ", ".join(e.address for e in selection.endpoints)
        rows.append(CheckRow(name, check, bool(selection.endpoints),
                             f"{len(items)} slices, {len(selection.endpoints)} endpoints"
                             + (f": {found}" if found else " (calls would fail UNAVAILABLE)")))
    finally:
        api.close()
    return rows


def render_check(rows: list[CheckRow]) -> str:
    width_target = max([len("target"), *(len(r.target) for r in rows)])
    width_check = max([len("check"), *(len(r.check) for r in rows)])
    lines = [f"{'target':<{width_target}}  {'check':<{width_check}}  result"]
    for row in rows:
        verdict = "ok" if row.ok else "FAIL"
        lines.append(f"{row.target:<{width_target}}  {row.check:<{width_check}}  "
                     f"{verdict}: {row.detail}")
    return "\n".join(lines)


def check_exit_code(rows: list[CheckRow]) -> int:
    return ExitCode.OK if all(r.ok for r in rows) else ExitCode.RUNTIME
