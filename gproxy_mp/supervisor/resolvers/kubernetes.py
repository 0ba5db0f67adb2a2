"""The Kubernetes resolver: list then watch a Service's EndpointSlices, forever.

Algorithm (client-go's Reflector, kopf's watcher), run in a thread of its own because the
official client blocks:

1. LIST `discovery.k8s.io/v1` EndpointSlices with `labelSelector=kubernetes.io/service-name=SVC`
   in the namespace; replace the local map (slice name → slice) and remember the list's
   resourceVersion. For a numeric target port, also GET the Service to map port → name; with
   `--locality auto` and a known node or zone, GET it for its `spec.trafficDistribution` too
   (again at every watch renewal, so a change is followed within `WATCH_TIMEOUT`), and once
   GET this proxy's Node for its zone unless `--zone` gave it. Each published set is placed
   by `locality.place`.
2. WATCH from that resourceVersion with bookmarks and a server-side timeout
   (`WATCH_TIMEOUT`, jittered), each read bounded by `kubeapi.READ_TIMEOUT`. ADDED and
   MODIFIED replace a slice, DELETED removes only that slice, BOOKMARK only moves the
   resourceVersion. After every change the merged set (`slices.select_from_slices`) is
   handed to the event loop. When the server ends the watch, watch again from the last
   resourceVersion at once, unless it ended with no event and no bookmark before
   `EMPTY_WATCH_FRACTION` of its timeout: such a watch (a proxy answering 200 with an empty
   body, a server going away) counts as failed and is renewed, from the same resourceVersion,
   only after the backoff of 3, so it cannot make a fleet of proxies hammer the API server.
3. `410 Gone` → relist at once and replace the map (re-watching "from now" would lose deletes).
   Any other failure (a malformed watch line included) → keep the last set, log once per
   outage (403s name the missing permission), count it in the `ResolverHealth`, and retry
   with jittered backoff (0.5 s doubling to `RETRY_MAX_DELAY`). The outage is over once a
   watch delivers an event or runs its course.
4. Where EndpointSlices are not served (404 on the list), the same loop runs on core/v1
   Endpoints of the Service instead.

The async side (`watch_kubernetes`) only forwards sets from the thread and drops unchanged ones.
Nothing waits on a dead producer: the thread's last act is to put its end on the queue, and
the generator raises `ResolverThreadError` (chained to what killed the thread) for the
supervisor to log and rebuild. Closing the generator sets `stop`, which ends the thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from gproxy_mp.config import KubernetesTarget
from gproxy_mp.model import EndpointSet
from gproxy_mp.supervisor.resolvers import kubeapi
from gproxy_mp.supervisor.resolvers.health import ResolverHealth
from gproxy_mp.supervisor.resolvers.kubeapi import (
    ENDPOINT_SLICES,
    ENDPOINTS,
    KubeApi,
    KubeApiError,
    Resource,
    ResourceExpiredError,
)
from gproxy_mp.supervisor.resolvers.locality import Here, LocalityConfig, place
from gproxy_mp.supervisor.resolvers.slices import (
    Selection,
    select_from_endpoints,
    select_from_slices,
    service_port_names,
)

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 240.0
"""Seconds the server keeps one watch open (jittered up to +25%), then it is renewed."""
RETRY_INITIAL_DELAY = 0.5
"""Seconds before the first retry after a failed list or watch."""
RETRY_MAX_DELAY = 5.0
"""Upper bound of the doubling retry delay: a restarted API server is found within seconds."""
RELIST_DELAY = 0.1
"""Seconds between a `410 Gone` and the relist, so an always-expiring watch cannot spin."""
JITTER = 0.2
"""Relative jitter of every retry delay, so many proxies do not reconnect in lockstep."""
EMPTY_WATCH_FRACTION = 0.5
"""A watch that ends with no event or bookmark before this fraction of its server timeout
(seconds asked for) was cut short: it counts as a failure and backs off. The API server sends
bookmarks about once a minute and ends a watch only at its timeout, so a healthy one never
looks like this; renewed at once, such watches would go out as fast as round trips allow."""

Json = dict[str, Any]


class ResolverThreadError(Exception):
    """The resolver's thread died of an unexpected error; `watch_kubernetes` raises this."""


class EmptyWatchError(KubeApiError):
    """A watch ended early without an event or a bookmark."""


class Reflector:
    """The list/watch loop for one target. `run` blocks until `stop` is set."""

    def __init__(self, api: Any, target: KubernetesTarget, *,
                 emit: Callable[[Selection], None], stop: threading.Event,
                 rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic,
                 health: ResolverHealth | None = None,
                 locality: LocalityConfig | None = None) -> None:
        self._api = api
        self._health = health or ResolverHealth(str(target))
        self._target = target
        self._emit = emit
        self._stop = stop
        self._rng = rng
        self._clock = clock
        self._resource: Resource = ENDPOINT_SLICES
        self._objects: dict[str, Json] = {}
        self._service_ports: dict[int, str] = {}
        self._last: Selection | None = None
        self._failures = 0
        self._warned_service = False
        self._version = ""
        self._locality = locality or LocalityConfig()
        self._zone_asked = False
        self._distribution: str | None = None

    @property
    def _selector(self) -> str:
        return f"kubernetes.io/service-name={self._target.service}"

    def run(self) -> None:
        while not self._stop.is_set():
            listing = True
            try:
                version = self._relist()
                listing = False
                while not self._stop.is_set():
                    try:
                        version = self._watch(version)
                    except EmptyWatchError as e:
                        # Nothing was missed: after the backoff, watch on from the same version.
                        self._failed(e)
                        continue
                    self._healthy()  # a watch that ran its course: the API works
                    self._follow_service()
            except ResourceExpiredError as e:
                log.info("kubernetes %s: %s; relisting", self._target, e)
                self._stop.wait(RELIST_DELAY)
            except KubeApiError as e:
                if listing and e.status == 404 and self._resource == ENDPOINT_SLICES:
                    log.warning("kubernetes %s: EndpointSlices are not served (%s); falling "
                                "back to core/v1 Endpoints", self._target, e)
                    self._resource = ENDPOINTS
                    continue
                self._failed(e)

    def _failed(self, error: KubeApiError) -> None:
        """Log once per outage, then back off: 0.5 s doubling to RETRY_MAX_DELAY, jittered."""
        self._health.failed(str(error))
        if self._failures == 0:
            kept = ("no endpoints yet" if self._last is None
                    else f"keeping the last {len(self._last.endpoints)} endpoints")
            log.warning("kubernetes %s: %s; %s, retrying", self._target, error, kept)
        self._failures += 1
        delay = min(RETRY_MAX_DELAY, RETRY_INITIAL_DELAY * 2.0 ** (self._failures - 1))
        self._stop.wait(delay * (1 - JITTER + 2 * JITTER * self._rng()))

    def _answered(self) -> None:
        """The API server answered: what the proxy holds is fresh (the staleness gauge)."""
        self._health.last_success = time.monotonic()

    def _healthy(self) -> None:
        """A watch delivered an event or ran its course: an outage, if any, is over."""
        self._answered()
        if self._failures:
            log.warning("kubernetes %s: API reachable again after %d failed attempts",
                        self._target, self._failures)
            self._failures = 0

    def _relist(self) -> str:
        self._read_service()
        self._learn_zone()
        if self._resource == ENDPOINT_SLICES:
            items, version = self._api.list(ENDPOINT_SLICES, selector=self._selector)
        else:
            items, version = self._api.list(ENDPOINTS, name=self._target.service)
        self._objects = {_name(item): item for item in items}
        self._version = str(version)
        self._publish()
        return str(version)

    def _read_service(self) -> None:
        """The Service's port → name map (for a numeric port) and its trafficDistribution
        (for `--locality auto`). Without permission to read it, port numbers are used as
        backend ports and no distribution is followed (warned once)."""
        numeric = isinstance(self._target.port, int)
        if not numeric and not self._follows_distribution:
            return
        try:
            service = self._api.get_service(self._target.service)
        except KubeApiError as e:
            if e.status != 403:
                raise
            if not self._warned_service:
                log.warning("kubernetes %s: cannot get services in namespace %s (%s); %s "
                            "Grant get on services.", self._target,
                            getattr(self._api, "namespace", "?"), e,
                            f"using port {self._target.port} as the backend port." if numeric
                            else "its trafficDistribution is not followed.")
                self._warned_service = True
            self._service_ports, self._distribution = {}, None
            return
        self._service_ports = service_port_names(service) if numeric else {}
        distribution = ((service or {}).get("spec") or {}).get("trafficDistribution")
        self._distribution = str(distribution) if distribution else None

    @property
    def _follows_distribution(self) -> bool:
        """`--locality auto` for a proxy that knows where it runs."""
        locality = self._locality
        return locality.mode == "auto" and (locality.node or locality.zone) is not None

    def _follow_service(self) -> None:
        """At a watch renewal: publish again if the Service's trafficDistribution changed."""
        if not self._follows_distribution:
            return
        before = self._distribution
        self._read_service()
        if self._distribution != before:
            log.info("kubernetes %s: trafficDistribution %s -> %s", self._target,
                     before or "unset", self._distribution or "unset")
            self._publish()

    def _learn_zone(self) -> None:
        """This proxy's zone from its Node's label, asked once (`--node-name` without
        `--zone`). Without permission to get nodes, locality is turned off (warned)."""
        locality = self._locality
        if (locality.mode == "off" or locality.node is None or locality.zone is not None
                or self._zone_asked):
            return
        try:
            zone = self._api.node_zone(locality.node)
        except KubeApiError as e:
            if e.status != 403:
                raise  # this relist fails and is retried with the others
            log.warning("kubernetes %s: cannot get node %s (grant get on nodes, or give "
                        "--zone): locality is off", self._target, locality.node)
            self._locality = dataclasses.replace(locality, mode="off")
            self._zone_asked = True
            return
        self._zone_asked = True
        if zone is None:
            log.warning("kubernetes %s: node %s has no topology.kubernetes.io/zone label (or "
                        "does not exist): only same-node locality applies", self._target,
                        locality.node)
            return
        log.info("kubernetes %s: this proxy runs on node %s in zone %s", self._target,
                 locality.node, zone)
        self._locality = dataclasses.replace(locality, zone=zone)

    def _watch(self, version: str) -> str:
        timeout = WATCH_TIMEOUT * (1 + 0.25 * self._rng())
        filters = ({"selector": self._selector} if self._resource == ENDPOINT_SLICES
                   else {"name": self._target.service})
        started = self._clock()
        events = self._api.watch(self._resource, resource_version=version, timeout=timeout,
                                 **filters)
        # Accepted, but not yet healthy: a proxy may accept every watch and end it at once.
        self._answered()
        delivered = False
        for event in events:
            if self._stop.is_set():
                break
            delivered = True
            kind, obj = event.get("type"), event.get("object") or {}
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            self._version = version
            self._healthy()
            if kind in ("ADDED", "MODIFIED"):
                self._objects[_name(obj)] = obj
            elif kind == "DELETED":
                self._objects.pop(_name(obj), None)
            else:
                continue  # BOOKMARK: only the resourceVersion moves
            self._publish()
        lasted = self._clock() - started
        if not delivered and not self._stop.is_set() and lasted < EMPTY_WATCH_FRACTION * timeout:
            raise EmptyWatchError(
                f"watch {self._resource} in namespace {getattr(self._api, 'namespace', '?')}: "
                f"ended after {lasted:.1f} s without an event or bookmark (asked for "
                f"{timeout:.0f} s)")
        return version

    def _publish(self) -> None:
        if self._resource == ENDPOINT_SLICES:
            selection = select_from_slices(self._objects, port=self._target.port,
                                           service_ports=self._service_ports)
        else:
            selection = select_from_endpoints(self._objects.get(self._target.service),
                                              port=self._target.port,
                                              service_ports=self._service_ports)
        selection = self._place(selection)
        self._report(selection)
        self._health.succeeded(
            resource=str(self._resource), namespace=getattr(self._api, "namespace", None),
            resource_version=self._version,
            objects={name: (obj.get("metadata") or {}).get("resourceVersion")
                     for name, obj in sorted(self._objects.items())},
            endpoints=selection.details)
        self._last = selection
        self._emit(selection)

    def _place(self, selection: Selection) -> Selection:
        """The selection with each endpoint's locality and ring (`locality.place`)."""
        locality = self._locality
        placed = place(selection.topology, Here(locality.node, locality.zone),
                       mode=locality.mode, distribution=self._distribution)
        details = {e.address: {**selection.details.get(e.address, {}),
                               "locality": e.locality.value, "ring": e.ring} for e in placed}
        return dataclasses.replace(selection, endpoints=placed, details=details)

    def _report(self, selection: Selection) -> None:
        last = self._last
        if selection.ignored_fqdn_slices and (
                last is None or selection.ignored_fqdn_slices != last.ignored_fqdn_slices):
            log.warning("kubernetes %s: ignoring FQDN EndpointSlices %s", self._target,
                        ", ".join(selection.ignored_fqdn_slices))
        if selection.slices_without_port and (
                last is None or selection.slices_without_port != last.slices_without_port):
            log.warning("kubernetes %s: EndpointSlices %s have no port %r", self._target,
                        ", ".join(selection.slices_without_port), self._target.port)
        if selection.fallback and (last is None or not last.fallback):
            log.warning("kubernetes %s: no endpoint is ready; using %d serving, terminating "
                        "ones", self._target, len(selection.endpoints))


def _name(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


@dataclass(frozen=True, slots=True)
class _ThreadEnded:
    """The resolver thread's last item on the queue: the error it died of, if any."""

    error: Exception | None


async def watch_kubernetes(target: KubernetesTarget, *, api_factory: Callable[[], Any],
                           health: ResolverHealth | None = None,
                           locality: LocalityConfig | None = None,
                           ) -> AsyncGenerator[EndpointSet, None]:
    """Run a `Reflector` in a daemon thread; yield each changed endpoint set. Raises
    `ResolverThreadError` if the thread ends while the generator is open."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[EndpointSet | _ThreadEnded] = asyncio.Queue()
    stop = threading.Event()

    def hand_over(item: EndpointSet | _ThreadEnded) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the supervisor is exiting
            stop.set()
            return False
        return True

    def emit(selection: Selection) -> None:
        hand_over(selection.endpoints)

    def run() -> None:
        error: Exception | None = None
        try:
            api = api_factory()
            try:
                Reflector(api, target, emit=emit, stop=stop, health=health,
                          locality=locality).run()
            finally:
                api.close()
        except Exception as e:  # the thread's guard: the generator raises it, chained
            error = e
        finally:
            handed = hand_over(_ThreadEnded(error))
            if error is not None and (not handed or stop.is_set()):  # nobody will raise it
                log.error("kubernetes %s: resolver thread failed", target, exc_info=error)

    thread = threading.Thread(target=run, name=f"kubernetes {target}", daemon=True)
    thread.start()
    try:
        last: EndpointSet | None = None
        while True:
            item = await queue.get()
            if isinstance(item, _ThreadEnded):
                if item.error is None:
                    raise ResolverThreadError(f"kubernetes resolver thread for {target} ended")
                raise ResolverThreadError(
                    f"kubernetes resolver thread for {target} died: "
                    f"{type(item.error).__name__}: {item.error}") from item.error
            if item != last:
                last = item
                yield item
    finally:
        stop.set()


def build_api_factory(target: KubernetesTarget, *, kubeconfig: str | None) -> Callable[[], Any]:
    """Load credentials now (bad ones fail at start-up); build a client inside the thread."""
    configuration = kubeapi.load_configuration(kubeconfig)
    namespace = target.namespace or kubeapi.default_namespace()

    def factory() -> KubeApi:
        return KubeApi(configuration, namespace=namespace)

    return factory
