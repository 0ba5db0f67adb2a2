"""The Kubernetes resolver's list/watch loop, played against a scripted API.

Each transcript is the API's side of a conversation: every list or watch call the reflector
makes takes the next step of the script (an answer, or an error to raise). When the script
runs out on a watch, the fake sets the stop event and `run()` returns; an unscripted list, or
a call of the wrong kind, fails the test. Retry waits go through an injected stop event that
records each delay and returns at once, so the whole file runs in well under a second.

Time is a fake clock: a retry wait moves it on by the delay, and a scripted watch lasts its
whole server timeout unless the step says how long it lasted (`lasted=0.0`: cut short).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gproxy_mp.config import KubernetesTarget
from gproxy_mp.supervisor.resolvers.health import ResolverHealth
from gproxy_mp.supervisor.resolvers.kubeapi import (
    ENDPOINT_SLICES,
    ENDPOINTS,
    KubeApiError,
    Resource,
    ResourceExpiredError,
    decode_watch,
)
from gproxy_mp.supervisor.resolvers.kubernetes import (
    RELIST_DELAY,
    Reflector,
    ResolverThreadError,
    watch_kubernetes,
)
from gproxy_mp.supervisor.resolvers.locality import LocalityConfig
from gproxy_mp.supervisor.resolvers.slices import Selection

Json = dict[str, Any]
Step = tuple[str, Any]

LOGGER = "gproxy_mp.supervisor.resolvers.kubernetes"
SHORT = {ENDPOINT_SLICES: "slices", ENDPOINTS: "endpoints"}
TARGET = KubernetesTarget("web", "grpc", "shop")
SELECTOR = "kubernetes.io/service-name=web"


def endpoint_slice(name: str, version: str, *ips: str, address_type: str = "IPv4",
                   **conditions: bool) -> Json:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "resourceVersion": version, "labels": {
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "gproxy-mp-tests"}},
        "addressType": address_type,
        "endpoints": [{"addresses": [ip], "conditions": conditions} for ip in ips],
        "ports": [{"name": "grpc", "port": 8080, "protocol": "TCP"}],
    }


def core_endpoints(version: str, *ips: str) -> Json:
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "resourceVersion": version},
        "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                     "ports": [{"name": "grpc", "port": 8080, "protocol": "TCP"}]}],
    }


def event(kind: str, obj: Json) -> Json:
    return {"type": kind, "object": obj}


def bookmark(version: str) -> Json:
    return event("BOOKMARK", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"resourceVersion": version,
                     "annotations": {"k8s.io/initial-events-end": "true"}}})


def listed(version: str, *items: Json) -> Step:
    return ("list", (list(items), version))


@dataclass(frozen=True)
class Watch:
    """One watch's answer: its events (or raw lines of the response), and how long it lasted;
    None: its whole server timeout."""

    events: list[Json | Exception]
    lines: list[bytes] | None = None
    lasted: float | None = None


def watched(*events: Json | Exception, lasted: float | None = None) -> Step:
    return ("watch", Watch(list(events), lasted=lasted))


def watched_lines(*lines: bytes) -> Step:
    """A watch whose response body is these lines, read as `KubeApi` reads them."""
    return ("watch", Watch([], lines=list(lines), lasted=0.0))


def fails(call: str, error: KubeApiError) -> Step:
    return (call, error)


def forbidden(verb: str) -> KubeApiError:
    return KubeApiError(
        f"cannot {verb} endpointslices.discovery.k8s.io in namespace shop: grant get, list, "
        f"watch (endpointslices.discovery.k8s.io is forbidden: User "
        f'"system:serviceaccount:shop:gproxy" cannot {verb} resource "endpointslices")',
        status=403)


EXPIRED = ResourceExpiredError(
    "watch endpointslices.discovery.k8s.io: too old resource version: 11 (25)", status=410)
NOT_SERVED = KubeApiError(
    "list endpointslices.discovery.k8s.io in namespace shop: 404 the server could not find "
    "the requested resource", status=404)
UNREACHABLE = KubeApiError(
    "watch endpointslices.discovery.k8s.io in namespace shop: Connection refused")

A = endpoint_slice("web-a", "8", "10.0.0.1")
B = endpoint_slice("web-b", "9", "10.0.0.2")
C = endpoint_slice("web-c", "11", "10.0.0.4")
B_SCALED = endpoint_slice("web-b", "12", "10.0.0.2", "10.0.0.3")
B_GONE = endpoint_slice("web-b", "13", "10.0.0.2")
C_SHARING = endpoint_slice("web-c", "7", "10.0.0.2", "10.0.0.4")
FQDN = endpoint_slice("web-fqdn", "6", "backend.example.com", address_type="FQDN")
A_DRAINING = endpoint_slice("web-a", "8", "10.0.0.1", ready=False, serving=True,
                            terminating=True)

ONE = ["10.0.0.1:8080"]
ONE_TWO = ["10.0.0.1:8080", "10.0.0.2:8080"]


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingStop(threading.Event):
    """A stop event whose retry waits are recorded, move the clock on, and return at once."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self._clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.waits.append(round(timeout, 6))
            if self._clock is not None:
                self._clock.now += timeout
        return self.is_set()


class ScriptedApi:
    """The `KubeApi` interface, answering from a script and recording every call."""

    def __init__(self, script: list[Step], *, service: Json | None = None,
                 stop: threading.Event | None = None, clock: FakeClock | None = None,
                 services: list[Json | None] | None = None,
                 zones: dict[str, str | KubeApiError] | None = None) -> None:
        self._script = list(script)
        self._service = service
        self._services = list(services or [])  # successive answers; then `service` for ever
        self._zones = zones or {}
        self.node_gets: list[str] = []
        self._stop = stop
        self._clock = clock
        self.watched_at: list[float] = []  # the clock at each watch call
        self.release = threading.Event()  # without `stop`: an exhausted watch blocks on this
        self.calls: list[str] = []
        self.filters: list[tuple[str, dict[str, str | None]]] = []
        self.timeouts: list[float] = []
        self.service_gets: list[str] = []
        self.closed = False
        self.thread: threading.Thread | None = None
        self.rewatched_after_release = False

    def get_service(self, name: str) -> Json | None:
        self.service_gets.append(name)
        if self._services:
            self._service = self._services.pop(0)
        return self._service

    def node_zone(self, name: str) -> str | None:
        self.node_gets.append(name)
        zone = self._zones.get(name)
        if isinstance(zone, KubeApiError):
            raise zone
        return zone

    def list(self, resource: Resource, *, selector: str | None = None,
             name: str | None = None) -> tuple[list[Json], str]:
        self.calls.append(f"list {SHORT[resource]}")
        self.filters.append((SHORT[resource], {"selector": selector, "name": name}))
        items, version = self._next("list")
        return list(items), str(version)

    def watch(self, resource: Resource, *, resource_version: str, timeout: float,
              selector: str | None = None, name: str | None = None) -> Iterator[Json]:
        self.calls.append(f"watch {SHORT[resource]} @{resource_version}")
        self.filters.append((SHORT[resource], {"selector": selector, "name": name}))
        self.timeouts.append(timeout)
        if self._clock is not None:
            self.watched_at.append(self._clock.now)
        # Like the real API: the request is made (and may fail) when watch() is called; the
        # events follow as the caller iterates.
        if not self._script:
            self._end_of_script()
            return iter(())
        return self._events(self._next("watch"), resource, timeout)

    def _events(self, watch: Watch, resource: Resource, timeout: float) -> Iterator[Json]:
        if watch.lines is not None:
            yield from decode_watch(watch.lines, resource=resource, namespace="shop")
        for item in watch.events:
            if isinstance(item, Exception):
                raise item  # an ERROR event (or worse) in the middle of the stream
            yield item
        if self._clock is not None:
            self._clock.now += timeout if watch.lasted is None else watch.lasted

    def close(self) -> None:
        self.closed = True

    def _next(self, call: str) -> Any:
        assert self._script, f"unscripted {call}; calls so far: {self.calls}"
        kind, answer = self._script.pop(0)
        assert kind == call, f"script expected a {kind}, the reflector made a {call}"
        if isinstance(answer, KubeApiError):
            raise answer
        return answer

    def _end_of_script(self) -> None:
        if self._stop is not None:
            self._stop.set()
            return
        if self.release.is_set():
            self.rewatched_after_release = True
            raise AssertionError("watched again after release: stop was not set")
        self.release.wait(timeout=2.0)


@dataclass
class Run:
    api: ScriptedApi
    stop: RecordingStop
    health: ResolverHealth
    emits: list[list[str]] = field(default_factory=list)
    placed: list[list[tuple[str, str, int]]] = field(default_factory=list)
    """Each emitted set as (address, locality, ring)."""


def play(script: list[Step], *, target: KubernetesTarget = TARGET,
         service: Json | None = None, services: list[Json | None] | None = None,
         zones: dict[str, str | KubeApiError] | None = None,
         locality: LocalityConfig | None = None) -> Run:
    clock = FakeClock()
    stop = RecordingStop(clock)
    run = Run(ScriptedApi(script, service=service, stop=stop, clock=clock, services=services,
                          zones=zones), stop, ResolverHealth(str(target)))

    def emit(selection: Selection) -> None:
        run.emits.append([e.address for e in selection.endpoints])
        run.placed.append([(e.address, e.locality.value, e.ring) for e in selection.endpoints])

    Reflector(run.api, target, emit=emit, stop=stop, rng=lambda: 0.5, clock=clock,
              health=run.health, locality=locality).run()
    return run


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == logging.WARNING]


@dataclass(frozen=True)
class Transcript:
    script: list[Step]
    calls: list[str]
    emits: list[list[str]]


TRANSCRIPTS = [
    pytest.param(Transcript(
        [listed("10", A, B)],
        ["list slices", "watch slices @10"],
        [ONE_TWO]), id="a-list-emits-the-initial-set"),
    pytest.param(Transcript(
        [listed("10"), watched(event("ADDED", A))],
        ["list slices", "watch slices @10", "watch slices @8"],
        [[], ONE]), id="an-empty-list-emits-an-empty-set"),
    pytest.param(Transcript(
        [listed("10", A), watched(event("ADDED", C))],
        ["list slices", "watch slices @10", "watch slices @11"],
        [ONE, ["10.0.0.1:8080", "10.0.0.4:8080"]]), id="added-emits-the-merged-set"),
    pytest.param(Transcript(
        [listed("10", A, B), watched(event("MODIFIED", B_SCALED))],
        ["list slices", "watch slices @10", "watch slices @12"],
        [ONE_TWO, ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]]),
        id="modified-emits-the-merged-set"),
    pytest.param(Transcript(
        [listed("10", A, B, C_SHARING), watched(event("DELETED", B_GONE))],
        ["list slices", "watch slices @10", "watch slices @13"],
        [["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.4:8080"],
         ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.4:8080"]]),
        id="deleted-removes-only-that-slice-whose-address-web-c-still-holds"),
    pytest.param(Transcript(
        [listed("10", A, B), watched(event("DELETED", B_GONE))],
        ["list slices", "watch slices @10", "watch slices @13"],
        [ONE_TWO, ONE]), id="deleted-emits-the-merged-set"),
    pytest.param(Transcript(
        [listed("10", A), watched(bookmark("15"))],
        ["list slices", "watch slices @10", "watch slices @15"],
        [ONE]), id="a-bookmark-moves-the-version-without-emitting"),
    pytest.param(Transcript(
        [listed("10", A), watched(event("ADDED", B)), watched(), watched(bookmark("20")),
         watched(event("MODIFIED", B_SCALED))],
        ["list slices", "watch slices @10", "watch slices @9", "watch slices @9",
         "watch slices @20", "watch slices @12"],
        [ONE, ONE_TWO, ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]]),
        id="an-ended-watch-resumes-from-the-last-version-without-relisting"),
    pytest.param(Transcript(
        [listed("10", A, B), watched(event("ADDED", C)), fails("watch", EXPIRED),
         listed("25", A, C)],
        ["list slices", "watch slices @10", "watch slices @11", "list slices",
         "watch slices @25"],
        [ONE_TWO, ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.4:8080"],
         ["10.0.0.1:8080", "10.0.0.4:8080"]]),
        id="410-relists-and-a-slice-deleted-meanwhile-disappears"),
    pytest.param(Transcript(
        [listed("10", A, B), watched(event("ADDED", C), EXPIRED), listed("25", A)],
        ["list slices", "watch slices @10", "list slices", "watch slices @25"],
        [ONE_TWO, ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.4:8080"], ONE]),
        id="410-in-the-middle-of-a-stream-relists"),
    pytest.param(Transcript(
        [listed("10", A), fails("watch", forbidden("watch")), listed("10", A)],
        ["list slices", "watch slices @10", "list slices", "watch slices @10"],
        [ONE, ONE]), id="403-on-the-watch-keeps-the-set-and-retries"),
    pytest.param(Transcript(
        [fails("list", forbidden("list")), fails("list", forbidden("list")), listed("10", A)],
        ["list slices", "list slices", "list slices", "watch slices @10"],
        [ONE]), id="403-on-the-first-list-emits-nothing-until-it-works"),
    pytest.param(Transcript(
        [listed("10", A), watched(event("ADDED", B), UNREACHABLE), listed("30", A, B)],
        ["list slices", "watch slices @10", "list slices", "watch slices @30"],
        [ONE, ONE_TWO, ONE_TWO]), id="a-lost-connection-keeps-the-set-and-relists"),
    pytest.param(Transcript(
        [fails("list", NOT_SERVED), listed("5", core_endpoints("5", "10.0.0.1")),
         watched(event("MODIFIED", core_endpoints("6", "10.0.0.1", "10.0.0.2")))],
        ["list slices", "list endpoints", "watch endpoints @5", "watch endpoints @6"],
        [ONE, ONE_TWO]), id="404-on-slices-falls-back-to-core-endpoints"),
]


@pytest.mark.parametrize("transcript", TRANSCRIPTS)
def test_the_reflector_follows_the_transcript(transcript: Transcript) -> None:
    run = play(transcript.script)
    assert run.api.calls == transcript.calls
    assert run.emits == transcript.emits


def test_slices_are_listed_and_watched_by_the_service_label() -> None:
    run = play([listed("10", A), watched(event("ADDED", B))])
    assert run.api.filters == [("slices", {"selector": SELECTOR, "name": None})] * 3


def test_the_endpoints_fallback_lists_and_watches_the_service_by_name() -> None:
    run = play([fails("list", NOT_SERVED), listed("5", core_endpoints("5", "10.0.0.1"))])
    assert run.api.filters == [("slices", {"selector": SELECTOR, "name": None}),
                               ("endpoints", {"selector": None, "name": "web"}),
                               ("endpoints", {"selector": None, "name": "web"})]


def test_the_endpoints_fallback_is_announced_once(caplog: pytest.LogCaptureFixture) -> None:
    play([fails("list", NOT_SERVED), listed("5", core_endpoints("5", "10.0.0.1")),
          watched(), watched()])
    [warning] = warnings_of(caplog)
    assert "falling back to core/v1 Endpoints" in warning


def test_a_watch_asks_the_server_to_end_it_after_the_jittered_timeout() -> None:
    run = play([listed("10", A), watched()])
    assert run.api.timeouts == [pytest.approx(270.0)] * 2  # 240 s, plus 0.5 of 25 %


WEB_SERVICE: Json = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"ports": [{"name": "grpc", "port": 80, "targetPort": "grpc", "protocol": "TCP"}]},
}


def test_a_numeric_port_reads_the_service_and_maps_its_port_to_the_slice_port() -> None:
    run = play([listed("10", A, B)], target=KubernetesTarget("web", 80, "shop"),
               service=WEB_SERVICE)
    assert run.api.service_gets == ["web"]
    assert run.emits == [ONE_TWO]  # Service port 80 → "grpc" → 8080 in the slices


def test_a_numeric_port_of_a_missing_service_is_used_as_the_backend_port() -> None:
    run = play([listed("10", A)], target=KubernetesTarget("web", 8080, "shop"), service=None)
    assert run.api.service_gets == ["web"]
    assert run.emits == [ONE]


def test_the_service_is_read_again_on_every_relist() -> None:
    run = play([listed("10", A), fails("watch", EXPIRED), listed("20", A)],
               target=KubernetesTarget("web", 80, "shop"), service=WEB_SERVICE)
    assert run.api.service_gets == ["web", "web"]


def test_a_named_port_never_reads_the_service() -> None:
    run = play([listed("10", A), fails("watch", EXPIRED), listed("20", A)])
    assert run.api.service_gets == []


def test_a_403_is_warned_about_once_naming_the_permission_and_the_set_is_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    run = play([listed("10", A), fails("watch", forbidden("watch")), listed("10", A)])
    warning, recovery = warnings_of(caplog)
    assert "reachable again after 1 failed attempts" in recovery
    assert "cannot watch endpointslices.discovery.k8s.io in namespace shop" in warning
    assert "grant get, list, watch" in warning
    assert "keeping the last 1 endpoints" in warning
    assert [] not in run.emits


def test_repeated_failures_warn_once_per_outage_and_log_the_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    play([fails("list", forbidden("list"))] * 4 + [listed("10", A)])
    first, recovery = warnings_of(caplog)
    assert "grant get, list, watch" in first
    assert "no endpoints yet" in first
    assert "reachable again after 4 failed attempts" in recovery


def test_a_second_outage_is_warned_about_again(caplog: pytest.LogCaptureFixture) -> None:
    # The API counts as reachable again once a watch has worked, not after a mere list.
    play([fails("list", forbidden("list")), fails("list", forbidden("list")), listed("10", A),
          watched(), fails("watch", UNREACHABLE), fails("list", UNREACHABLE), listed("10", A),
          watched()])
    assert len(warnings_of(caplog)) == 4  # outage, recovery, outage, recovery


def test_retries_back_off_doubling_up_to_the_maximum() -> None:
    run = play([fails("list", UNREACHABLE)] * 6 + [listed("10", A)])
    assert run.stop.waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_backoff_starts_over_after_a_recovery() -> None:
    run = play([fails("list", UNREACHABLE)] * 3 + [listed("10", A), watched()]
               + [fails("watch", UNREACHABLE), listed("10", A)])
    assert run.stop.waits == [0.5, 1.0, 2.0, 0.5]


def test_a_410_relists_after_a_short_pause_without_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    run = play([listed("10", A), fails("watch", EXPIRED), listed("20", A)])
    assert run.stop.waits == [RELIST_DELAY]
    assert warnings_of(caplog) == []


def test_a_watch_that_keeps_failing_after_good_lists_warns_once_and_backs_off(
        caplog: pytest.LogCaptureFixture) -> None:
    run = play([listed("10", A), fails("watch", forbidden("watch"))] * 3 + [listed("10", A)])
    assert run.stop.waits == [0.5, 1.0, 2.0]
    assert len([w for w in warnings_of(caplog) if "grant get, list, watch" in w]) == 1


# (script, the one warning expected however many events repeat the condition)
REPORTS = [
    pytest.param([listed("10", A, FQDN), watched(event("MODIFIED", A), event("ADDED", B))],
                 "ignoring FQDN EndpointSlices web-fqdn", id="fqdn-slice"),
    pytest.param([listed("10", A_DRAINING), watched(event("MODIFIED", A_DRAINING),
                                                    event("ADDED", C))],
                 "no endpoint is ready; using 1 serving, terminating ones",
                 id="draining-fallback"),
]


@pytest.mark.parametrize(("script", "warning"), REPORTS)
def test_a_condition_of_the_slices_is_warned_about_once_while_it_lasts(
        script: list[Step], warning: str, caplog: pytest.LogCaptureFixture) -> None:
    play(script)
    assert warnings_of(caplog) == [f"kubernetes {TARGET}: {warning}"]


A_RELABELLED = {**A, "metadata": {**A["metadata"], "resourceVersion": "11",
                                  "labels": {**A["metadata"]["labels"], "team": "shop"}}}
A_MOVED = endpoint_slice("web-a", "12", "10.0.0.5")


async def test_watch_kubernetes_yields_changes_only_and_aclose_stops_its_thread() -> None:
    api = ScriptedApi([listed("10", A), watched(event("MODIFIED", A_RELABELLED),
                                                event("MODIFIED", A_MOVED))])

    def factory() -> ScriptedApi:
        api.thread = threading.current_thread()
        return api

    updates = watch_kubernetes(TARGET, api_factory=factory)
    assert isinstance(updates, AsyncGenerator)
    try:
        async with asyncio.timeout(2.0):
            first = await anext(updates)
            second = await anext(updates)
    finally:
        await updates.aclose()
        api.release.set()  # the fake's blocked watch returns; only `stop` can end the loop now
    assert [e.address for e in first] == ONE
    assert [e.address for e in second] == ["10.0.0.5:8080"]  # the relabel changed nothing
    assert api.thread is not None and api.thread is not threading.current_thread()
    api.thread.join(timeout=2.0)
    assert not api.thread.is_alive()
    assert not api.rewatched_after_release
    assert api.closed
    # The renewed watch may or may not have started before aclose() set `stop`.
    assert api.calls[:2] == ["list slices", "watch slices @10"]
    assert api.calls[2:] in ([], ["watch slices @12"])


# Issue 12: nothing fails silently, nothing hammers the API server.

B_ADDED_LINE = b'{"type": "ADDED", "object": ' + json.dumps(B).encode() + b"}"
MALFORMED_LINES = {
    "not-json": b"<html><body>502 Bad Gateway</body></html>",
    "a-json-array": b"[1, 2]",
    "a-json-string": b'"ADDED"',
    "an-event-without-an-object": b'{"type": "ADDED"}',
    "an-event-whose-object-is-not-an-object": b'{"type": "ADDED", "object": "web-b"}',
    "an-event-without-a-type": b'{"object": {"metadata": {"name": "web-b"}}}',
}


@pytest.mark.parametrize("line", MALFORMED_LINES.values(), ids=MALFORMED_LINES.keys())
def test_a_malformed_watch_line_is_a_failed_watch_and_later_changes_still_arrive(
        line: bytes, caplog: pytest.LogCaptureFixture) -> None:
    run = play([listed("10", A), watched_lines(line), listed("10", A),
                watched_lines(B_ADDED_LINE)])
    assert run.api.calls == ["list slices", "watch slices @10", "list slices",
                             "watch slices @10", "watch slices @9"]
    assert run.emits == [ONE, ONE, ONE_TWO]
    assert run.stop.waits == [0.5]  # the usual jittered backoff, before relisting
    assert run.health.errors == 1
    assert "malformed watch event" in run.health.last_error
    warning, _recovery = warnings_of(caplog)
    assert "watch endpointslices.discovery.k8s.io in namespace shop: malformed" in warning


def test_watches_that_end_at_once_without_an_event_back_off_like_failures(
        caplog: pytest.LogCaptureFixture) -> None:
    # A proxy in front of the API server answering every watch with 200 and an empty body.
    run = play([listed("10", A)] + [watched(lasted=0.0)] * 8)
    assert run.api.calls == ["list slices"] + ["watch slices @10"] * 9  # nothing to relist for
    assert run.stop.waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert run.health.errors == 8
    later = run.api.watched_at[3:]
    assert (len(later) - 1) / (later[-1] - later[0]) < 1.0  # watches per second
    warning, *_ = warnings_of(caplog)  # then the end of the script, which counts as recovery
    assert "ended after 0.0 s without an event or bookmark" in warning
    assert "keeping the last 1 endpoints" in warning
    assert len([w for w in warnings_of(caplog) if "without an event" in w]) == 1


RENEWED_AT_ONCE = {
    "after-an-event": [listed("10", A), watched(event("ADDED", B), lasted=0.0)],
    "after-a-bookmark": [listed("10", A), watched(bookmark("15"), lasted=0.0)],
    "after-most-of-its-timeout": [listed("10", A), watched(lasted=200.0)],  # of 270 s
}


@pytest.mark.parametrize("script", RENEWED_AT_ONCE.values(), ids=RENEWED_AT_ONCE.keys())
def test_a_watch_that_delivered_something_or_ran_long_is_renewed_at_once(
        script: list[Step]) -> None:
    run = play(script)
    assert run.stop.waits == []
    assert run.health.errors == 0
    assert [call.split()[0] for call in run.api.calls] == ["list", "watch", "watch"]


class Boom(RuntimeError):
    """An error no part of the resolver expects."""


class DyingApi(ScriptedApi):
    """A scripted API that fails unexpectedly at `where`: "list", or "events" (mid-stream)."""

    def __init__(self, where: str) -> None:
        super().__init__([listed("10", A), watched(event("ADDED", B), Boom("in the stream"))])
        self.where = where

    def list(self, resource: Resource, *, selector: str | None = None,
             name: str | None = None) -> tuple[list[Json], str]:
        if self.where == "list":
            raise Boom("in list")
        return super().list(resource, selector=selector, name=name)


def dying_factory(where: str) -> tuple[Callable[[], ScriptedApi], list[DyingApi]]:
    made: list[DyingApi] = []

    def factory() -> ScriptedApi:
        if where == "factory":
            raise Boom("in the factory")
        made.append(DyingApi(where))
        made[-1].thread = threading.current_thread()
        return made[-1]

    return factory, made


@pytest.mark.parametrize(("where", "before"), [("factory", []), ("list", []),
                                               ("events", [ONE, ONE_TWO])])
async def test_watch_kubernetes_raises_when_its_thread_dies(
        where: str, before: list[list[str]]) -> None:
    factory, made = dying_factory(where)
    updates = watch_kubernetes(TARGET, api_factory=factory)
    yielded: list[list[str]] = []
    try:
        with pytest.raises(ResolverThreadError) as raised:
            async with asyncio.timeout(2.0):
                async for endpoints in updates:
                    yielded.append([e.address for e in endpoints])
    finally:
        await updates.aclose()
    assert yielded == before
    assert f"kubernetes resolver thread for {TARGET} died" in str(raised.value)
    assert isinstance(raised.value.__cause__, Boom)
    for api in made:
        assert api.closed
        assert api.thread is not None
        api.thread.join(timeout=2.0)
        assert not api.thread.is_alive()


# --- locality: the proxy's node and zone, the Service's trafficDistribution ---------------

def placed_slice(name: str, version: str, *pods: tuple[str, str, str]) -> Json:
    """A slice whose endpoints are (ip, node, zone)."""
    slice_ = endpoint_slice(name, version)
    slice_["endpoints"] = [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node,
                            "zone": zone} for ip, node, zone in pods]
    return slice_


SPREAD = placed_slice("web-a", "8", ("10.0.0.1", "n1", "z1"), ("10.0.0.2", "n2", "z1"),
                      ("10.0.0.3", "n3", "z2"))
ON_N1 = LocalityConfig("auto", node="n1")


def service_with(distribution: str | None) -> Json:
    spec: Json = {"ports": [{"name": "grpc", "port": 80}]}
    if distribution is not None:
        spec["trafficDistribution"] = distribution
    return {"metadata": {"name": "web"}, "spec": spec}


def test_the_services_traffic_distribution_and_the_nodes_zone_place_the_endpoints() -> None:
    run = play([listed("10", SPREAD)], service=service_with("PreferSameNode"),
               zones={"n1": "z1"}, locality=ON_N1)
    assert run.api.node_gets == ["n1"]
    assert run.placed == [[("10.0.0.1:8080", "same_node", 0), ("10.0.0.2:8080", "same_zone", 1),
                           ("10.0.0.3:8080", "other", 2)]]


def test_a_zone_given_on_the_command_line_is_not_asked_for() -> None:
    run = play([listed("10", SPREAD)], service=service_with("PreferClose"),
               locality=LocalityConfig("auto", node="n3", zone="z2"))
    assert run.api.node_gets == []
    assert run.placed == [[("10.0.0.1:8080", "other", 1), ("10.0.0.2:8080", "other", 1),
                           ("10.0.0.3:8080", "same_node", 0)]]


def test_without_permission_to_get_nodes_locality_is_off_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    denied = KubeApiError('cannot get nodes: nodes "n1" is forbidden', status=403)
    run = play([listed("10", SPREAD), fails("watch", UNREACHABLE), listed("11", SPREAD)],
               service=service_with("PreferSameNode"), zones={"n1": denied}, locality=ON_N1)
    assert run.api.node_gets == ["n1"]  # asked once, not again at the relist
    assert all(placed == [("10.0.0.1:8080", "none", 0), ("10.0.0.2:8080", "none", 0),
                          ("10.0.0.3:8080", "none", 0)] for placed in run.placed), run.placed
    said = [w for w in warnings_of(caplog) if "get node" in w]
    assert said == ["kubernetes kubernetes://shop/web:grpc: cannot get node n1 (grant get on "
                    "nodes, or give --zone): locality is off"], warnings_of(caplog)


def test_a_change_of_traffic_distribution_is_followed_at_the_next_watch_renewal() -> None:
    run = play([listed("10", SPREAD), watched(), watched()],
               services=[service_with(None), service_with("PreferSameZone")],
               zones={"n1": "z1"}, locality=ON_N1)
    assert run.placed == [
        [("10.0.0.1:8080", "same_node", 0), ("10.0.0.2:8080", "same_zone", 0),
         ("10.0.0.3:8080", "other", 0)],
        [("10.0.0.1:8080", "same_node", 0), ("10.0.0.2:8080", "same_zone", 0),
         ("10.0.0.3:8080", "other", 1)],
    ]


def test_with_locality_off_nothing_more_is_asked() -> None:
    run = play([listed("10", SPREAD)], service=service_with("PreferSameNode"),
               zones={"n1": "z1"}, locality=LocalityConfig("off", node="n1"))
    assert run.api.node_gets == [] and run.api.service_gets == []
    assert {ring for placed in run.placed for _, _, ring in placed} == {0}
