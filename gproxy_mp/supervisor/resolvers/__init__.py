"""Resolvers turn a target into an eternal async iterator of full endpoint sets (design §5).

Each resolver deduplicates unchanged sets and handles its own reconnects; on an outage it
yields nothing new, so workers keep the last known set. `build_resolver` is the one place that
maps a target to its resolver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gproxy_mp.config import DnsTarget, KubernetesTarget, Settings, StaticTarget, Target
from gproxy_mp.model import EndpointSet
from gproxy_mp.supervisor.resolvers.dns import build_lookup, watch_dns
from gproxy_mp.supervisor.resolvers.health import ResolverHealth
from gproxy_mp.supervisor.resolvers.locality import LocalityConfig
from gproxy_mp.supervisor.resolvers.static import watch_static


def build_resolver(target: Target, settings: Settings, *,
                   health: ResolverHealth | None = None) -> AsyncIterator[EndpointSet]:
    match target:
        case StaticTarget():
            return watch_static(target, health=health)
        case DnsTarget():
            return watch_dns(target, lookup=build_lookup(target),
                             refresh_interval=settings.dns_refresh_interval, health=health)
        case KubernetesTarget():
            # Imported here: the Kubernetes client costs ~0.2 s to import, for k8s targets only.
            from gproxy_mp.supervisor.resolvers.kubernetes import (  # noqa: PLC0415
                build_api_factory,
                watch_kubernetes,
            )

            return watch_kubernetes(
                target, health=health,
                api_factory=build_api_factory(target, kubeconfig=settings.kubeconfig),
                locality=LocalityConfig(settings.locality, settings.node_name, settings.zone))


def check_resolvable(settings: Settings) -> None:
    """Fail before anything starts if a target cannot be resolved at all (no credentials)."""
    for target in settings.targets:
        if isinstance(target, KubernetesTarget):
            from gproxy_mp.supervisor.resolvers.kubernetes import (  # noqa: PLC0415
                build_api_factory,
            )

            build_api_factory(target, kubeconfig=settings.kubeconfig)
