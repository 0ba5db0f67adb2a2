"""What the admin port shows: readiness, the endpoint view, and Prometheus metrics.

Built from a read-only `SupervisorView` of the supervisor's state; nothing here changes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gproxy_mp import __version__
from gproxy_mp.bus.server import BusServer
from gproxy_mp.bus.table import EndpointTable
from gproxy_mp.config import Settings, Target
from gproxy_mp.descriptors import unary_sources
from gproxy_mp.supervisor.admin import AdminState
from gproxy_mp.supervisor.metrics import CallCounters, SupervisorCounts, render_metrics
from gproxy_mp.supervisor.resolvers.health import ResolverHealth
from gproxy_mp.supervisor.workers import WorkerPool, WorkerSlot


@dataclass(frozen=True, slots=True)
class SupervisorView:
    settings: Settings
    stopping: asyncio.Event
    pool: WorkerPool
    table: EndpointTable
    bus: BusServer
    counters: CallCounters
    healths: dict[Target, ResolverHealth]


def build_admin_state(view: SupervisorView) -> AdminState:
    return AdminState(readiness=lambda: readiness(view), endpoints=lambda: endpoints(view),
                      metrics=lambda: metrics(view))


def readiness(view: SupervisorView) -> str | None:
    """None when ready; else why not."""
    if view.stopping.is_set():
        return "shutting down"
    idle = [name for name, serving in view.pool.routes_serving().items() if serving == 0]
    return f"no serving worker for {', '.join(idle)}" if idle else None


def endpoints(view: SupervisorView) -> dict[str, Any]:
    routes = []
    now = time.monotonic()
    for route in view.settings.routes:
        current = view.table.current(route.id)
        age = view.healths[route.target].age()
        slots = [slot for slot in view.pool.slots.values() if slot.config.route == route.id]
        routes.append({
            "route": route.name, "id": route.id, "target": str(route.target),
            "seq": current[0] if current else None,
            "endpoints": [e.address for e in current[1]] if current else None,
            "source_age_seconds": None if age is None else round(age, 3),
            "resolver": view.healths[route.target].describe(),
            "unhealthy_endpoints": unhealthy_endpoints(slots),
            "panic": any(in_panic(slot) for slot in slots),
            "workers": [
                {"worker": slot.config.worker, "pid": slot.pid, "state": slot.state,
                 "serving": view.pool.is_serving(slot),
                 "seconds_since_report": None if slot.last_report is None
                 else round(now - slot.last_report, 3),
                 "restarts": slot.restarts,
                 "applied_seq": slot.last_status.seq if slot.last_status else None,
                 "active_calls": slot.last_status.active_calls if slot.last_status else 0,
                 "calls": view.counters.worker_calls(slot.pid),
                 "unhealthy_backends": len(slot.last_status.unhealthy)
                 + slot.last_status.unhealthy_unlisted if slot.last_status else 0,
                 "panic": in_panic(slot)}
                for slot in slots
            ],
        })
    # Reflection-learned methods live in the workers only (they ask their own backends).
    unary = unary_sources(view.settings.worker.unary_methods, view.settings.proto_descriptor_set)
    return {"epoch": view.table.epoch, "seq": view.table.seq, "routes": routes,
            "unary_methods": unary}


def unhealthy_endpoints(slots: Iterable[WorkerSlot]) -> dict[str, dict[str, str]]:
    """Per endpoint that some worker does not count as healthy: each such worker's reason
    (``not_serving``, ``failing``, ``struck``), from their latest status reports."""
    found: dict[str, dict[str, str]] = {}
    for slot in slots:
        if slot.last_status is not None:
            for address, condition in slot.last_status.unhealthy.items():
                found.setdefault(address, {})[slot.config.worker] = condition.value
    return dict(sorted(found.items()))


def in_panic(slot: WorkerSlot) -> bool:
    """Whether a running worker's latest report says no backend passes its health check."""
    return slot.pid is not None and slot.last_status is not None and slot.last_status.panic


def metrics(view: SupervisorView) -> str:
    routes = view.settings.routes
    serving = view.pool.routes_serving()
    routes_by_id = {r.id: r.name for r in routes}
    healths = view.healths.values()
    counts = SupervisorCounts(
        endpoints={r.name: len(c[1]) if (c := view.table.current(r.id)) else 0 for r in routes},
        serving={r.name: serving.get(r.name, 0) for r in routes},
        panic={r.name: int(any(in_panic(s) for s in view.pool.slots.values()
                               if s.config.route == r.id)) for r in routes},
        worker_calls={(routes_by_id[s.config.route], s.config.worker):
                      view.counters.worker_calls(s.pid)
                      for s in view.pool.slots.values() if s.pid is not None},
        restarts=dict(view.pool.restarts),
        resolver_updates={h.target: h.updates for h in healths},
        resolver_errors={h.target: h.errors for h in healths},
        resolver_ages={h.target: age for h in healths if (age := h.age()) is not None},
        bus_dropped=view.bus.dropped,
        version=__version__,
        certificate_expiry=view.counters.certificate_expiry(),
    )
    return render_metrics(view.counters.totals(), counts)
