"""The bus wire format: round trips, topics, and what happens to frames that do not fit."""

from __future__ import annotations

import json

import pytest

from gproxy_mp.bus.schema import (
    LATENCY_BUCKETS,
    MAX_UNHEALTHY,
    BackendCondition,
    CallCounts,
    EndpointsMessage,
    Heartbeat,
    MalformedMessageError,
    Message,
    SnapshotRequest,
    TlsRefusal,
    TlsSide,
    WorkerState,
    WorkerStatus,
    decode,
    encode,
)
from gproxy_mp.errors import BusProtocolError
from gproxy_mp.model import Endpoint, Locality

ENDPOINTS = (Endpoint("10.0.0.1", 50051), Endpoint("::1", 50052))

MESSAGES: list[Message] = [
    EndpointsMessage(epoch="e1", seq=7, route="0", target="static:///10.0.0.1:50051",
                     endpoints=ENDPOINTS),
    EndpointsMessage(epoch="e1", seq=7, route="10", target="dns:///b:1", endpoints=ENDPOINTS,
                     snapshot=True),
    EndpointsMessage(epoch="e1", seq=0, route="0", target="dns:///b:1", endpoints=()),
    EndpointsMessage(epoch="e1", seq=3, route="0", target="kubernetes:///s:1", endpoints=(
        Endpoint("10.0.0.1", 1, Locality.SAME_NODE, 0),
        Endpoint("10.0.0.2", 1, Locality.OTHER, 1))),
    Heartbeat(epoch="e1", seq=9, routes={"0": 7, "1": 9}),
    Heartbeat(epoch="e1", seq=0, routes={}),
    SnapshotRequest(route="0", worker="0#1"),
    WorkerStatus(worker="0#1", pid=4242, state=WorkerState.READY, seq=7, active_calls=3,
                 stats=CallCounts(calls={("10.0.0.1:1", "OK", "", "none"): 5,
                                         ("other", "UNAVAILABLE", "/p.S/M", "same_zone"): 1},
                                  buckets=[1] * (len(LATENCY_BUCKETS) + 1), duration_sum=0.5,
                                  retries={"unavailable": 2}, tls_failures=3,
                                  listener_tls_failures=4,
                                  tls_refused={(TlsSide.LISTENER, TlsRefusal.EXPIRED): 2,
                                               (TlsSide.BACKEND, TlsRefusal.UNUSABLE): 1}),
                 certificates={TlsSide.LISTENER: 1796647200.0, TlsSide.BACKEND: 1796647201.5}),
    WorkerStatus(worker="1#0", pid=1, state=WorkerState.DRAINING, seq=0, active_calls=0),
]

TOPICS = [b"route/0/", b"route/10/", b"route/0/", b"route/0/", b"heartbeat/", b"heartbeat/",
          b"snapshot/", b"status/", b"status/"]


@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_kind_decodes_to_what_was_encoded(message: Message) -> None:
    assert decode(encode(message)) == message


@pytest.mark.parametrize(("message", "topic"), list(zip(MESSAGES, TOPICS, strict=True)))
def test_each_message_travels_under_a_topic_ending_in_a_slash(
    message: Message, topic: bytes
) -> None:
    assert encode(message)[0] == topic


def test_endpoints_arrive_as_a_canonical_set_whatever_order_was_sent() -> None:
    payload = {"v": 1, "kind": "endpoints", "epoch": "e1", "seq": 1, "route": "0",
               "target": "t", "endpoints": [["b", 1], ["a", 1], ["b", 1]]}
    message = decode([b"route/0/", json.dumps(payload).encode()])
    assert isinstance(message, EndpointsMessage)
    assert message.endpoints == (Endpoint("a", 1), Endpoint("b", 1))


def test_a_message_of_an_unknown_kind_decodes_to_nothing() -> None:
    assert decode([b"gossip/", b'{"v":1,"kind":"gossip","news":"x"}']) is None


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_a_message_of_another_schema_version_is_a_protocol_error(version: object) -> None:
    payload = {"v": version, "kind": "heartbeat", "epoch": "e1", "seq": 1, "routes": {}}
    with pytest.raises(BusProtocolError, match="version"):
        decode([b"heartbeat/", json.dumps(payload).encode()])


def test_a_message_without_a_version_is_a_protocol_error() -> None:
    with pytest.raises(BusProtocolError):
        decode([b"heartbeat/", b'{"kind":"heartbeat","epoch":"e1","seq":1,"routes":{}}'])


def endpoints_payload(**change: object) -> bytes:
    payload = {"v": 1, "kind": "endpoints", "epoch": "e1", "seq": 1, "route": "0",
               "target": "t", "endpoints": [["10.0.0.1", 1]]} | change
    return json.dumps(payload).encode()


def status_payload(unhealthy: object = None, certificates: object = None,
                   **change: object) -> bytes:
    """A worker status whose stats have `change` applied (and `unhealthy`, if given)."""
    stats = {"calls": [["b:1", "OK", 3, "", "same_node"]],
             "buckets": [0] * (len(LATENCY_BUCKETS) + 1), "duration_sum": 0.1,
             "retries": {"unavailable": 1}, "tls_failures": 0,
             "listener_tls_failures": None,
             "tls_refused": [["listener", "expired", 1]]} | change
    payload = {"v": 1, "kind": "status", "worker": "0#0", "pid": 1, "state": "ready",
               "seq": 1, "active_calls": 0, "stats": stats,
               "unhealthy": {"b:2": "not_serving"} if unhealthy is None else unhealthy,
               "unhealthy_unlisted": 0, "panic": False,
               "certificates": certificates or {"listener": 1.5e9}}
    return json.dumps(payload).encode()


def test_a_status_decodes_its_state_and_its_counts() -> None:
    message = decode([b"status/", status_payload()])
    assert isinstance(message, WorkerStatus)
    assert message.state is WorkerState.READY
    assert message.stats.calls == {("b:1", "OK", "", "same_node"): 3}
    assert message.stats.retries == {"unavailable": 1}
    assert message.unhealthy == {"b:2": BackendCondition.NOT_SERVING}
    assert message.stats.tls_refused == {(TlsSide.LISTENER, TlsRefusal.EXPIRED): 1}
    assert message.certificates == {TlsSide.LISTENER: 1.5e9}


def test_a_status_round_trips_its_unhealthy_backends() -> None:
    status = WorkerStatus(worker="0#1", pid=7, state=WorkerState.READY, seq=3, active_calls=2,
                          unhealthy={"10.0.0.1:80": BackendCondition.STRUCK,
                                     "10.0.0.2:80": BackendCondition.FAILING},
                          unhealthy_unlisted=5)

    assert decode(encode(status)) == status


@pytest.mark.parametrize("condition", list(BackendCondition))
def test_a_status_round_trips_every_condition_and_panic(condition: BackendCondition) -> None:
    status = WorkerStatus(worker="0#1", pid=7, state=WorkerState.READY, seq=3, active_calls=0,
                          unhealthy={"10.0.0.1:80": condition}, panic=True)

    assert decode(encode(status)) == status


@pytest.mark.parametrize("panic", ["yes", 1, None])
def test_a_status_whose_panic_is_not_a_boolean_is_malformed(panic: object) -> None:
    payload = json.loads(status_payload())
    payload["panic"] = panic
    with pytest.raises(MalformedMessageError):
        decode([b"status/", json.dumps(payload).encode()])


def heartbeat_payload(**change: object) -> bytes:
    payload = {"v": 1, "kind": "heartbeat", "epoch": "e1", "seq": 1, "routes": {"0": 1}} | change
    return json.dumps(payload).encode()


MALFORMED = [
    pytest.param([b"heartbeat/"], id="one-frame"),
    pytest.param([b"heartbeat/", heartbeat_payload(), b""], id="three-frames"),
    pytest.param([b"heartbeat/", b"{not json"], id="not-json"),
    pytest.param([b"\xff/", heartbeat_payload()], id="topic-not-utf8"),
    pytest.param([b"heartbeat/", b"\xff\xfe"], id="payload-not-utf8"),
    pytest.param([b"heartbeat/", b"[1, 2]"], id="json-list"),
    pytest.param([b"heartbeat/", b'"heartbeat"'], id="json-string"),
    pytest.param([b"heartbeat/", b'{"v":1,"kind":"heartbeat","epoch":"e1","seq":1}'],
                 id="missing-field"),
    pytest.param([b"heartbeat/", heartbeat_payload(seq=-1)], id="negative-seq"),
    pytest.param([b"heartbeat/", heartbeat_payload(seq=True)], id="bool-seq"),
    pytest.param([b"heartbeat/", heartbeat_payload(seq=1.5)], id="float-seq"),
    pytest.param([b"heartbeat/", heartbeat_payload(seq="1")], id="string-seq"),
    pytest.param([b"heartbeat/", heartbeat_payload(epoch=1)], id="number-epoch"),
    pytest.param([b"heartbeat/", heartbeat_payload(routes=[["0", 1]])], id="routes-not-object"),
    pytest.param([b"heartbeat/", heartbeat_payload(routes={"0": -1})], id="negative-route-seq"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["10.0.0.1", 0]])], id="port-0"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["10.0.0.1", 65536]])],
                 id="port-65536"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["", 1]])], id="empty-host"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["10.0.0.1"]])], id="no-port"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["10.0.0.1", 1, "same_node"]])],
                 id="locality-without-ring"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["10.0.0.1", 1, "moon", 0]])],
                 id="unknown-locality-of-endpoint"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[["10.0.0.1", 1, "other", -1]])],
                 id="negative-ring"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=["10.0.0.1:1"])], id="endpoint-str"),
    pytest.param([b"route/0/", endpoints_payload(endpoints=[[1, 1]])], id="number-host"),
    pytest.param([b"route/0/", endpoints_payload(endpoints={"a": 1})], id="endpoints-object"),
    pytest.param([b"route/10/", endpoints_payload(route="1")], id="topic-route-mismatch"),
    pytest.param([b"route/0/", endpoints_payload(route=0)], id="number-route"),
    pytest.param([b"status/", b'{"v":1,"kind":"status","worker":"0#0","pid":1,"state":"ready",'
                              b'"seq":1,"active_calls":-2}'], id="negative-active-calls"),
    pytest.param([b"snapshot/", b'{"v":1,"kind":"snapshot_request","route":"0"}'],
                 id="request-without-worker"),
    pytest.param([b"status/", b'{"v":1,"kind":"status","worker":"0#0","pid":1,"state":"ready",'
                              b'"seq":1,"active_calls":0}'], id="status-without-stats"),
    pytest.param([b"status/", status_payload().replace(b'"ready"', b'"napping"')],
                 id="unknown-worker-state"),
    pytest.param([b"status/", status_payload(calls=[["b:1", "OK", "x", "", "none"]])],
                 id="call-count-not-a-number"),
    pytest.param([b"status/", status_payload(calls=[["b:1", "OK", 3, ""]])],
                 id="call-without-locality"),
    pytest.param([b"status/", status_payload(calls=[["b:1", "OK", 3, "", "mars"]])],
                 id="unknown-locality"),
    pytest.param([b"status/", status_payload(calls="junk")], id="calls-not-a-list"),
    pytest.param([b"status/", status_payload(unhealthy={"b:2": "sulking"})],
                 id="unknown-backend-condition"),
    pytest.param([b"status/", status_payload(unhealthy=["b:2"])], id="unhealthy-not-an-object"),
    pytest.param([b"status/", status_payload(
        unhealthy={f"b:{n}": "failing" for n in range(MAX_UNHEALTHY + 1)})],
                 id="too-many-unhealthy"),
    pytest.param([b"status/", status_payload(buckets=[1, 2])], id="too-few-buckets"),
    pytest.param([b"status/", status_payload(duration_sum="no")], id="duration-sum-not-a-number"),
    pytest.param([b"status/", status_payload(duration_sum=-1)], id="negative-duration-sum"),
    pytest.param([b"status/", status_payload(retries={"unavailable": "x"})],
                 id="retry-count-not-a-number"),
    pytest.param([b"status/", status_payload(tls_failures=-1)], id="negative-tls-failures"),
    pytest.param([b"status/", status_payload(listener_tls_failures=-1)],
                 id="negative-listener-tls-failures"),
    pytest.param([b"status/", status_payload(tls_refused=[["sidecar", "expired", 1]])],
                 id="unknown-tls-side"),
    pytest.param([b"status/", status_payload(tls_refused=[["listener", "tired", 1]])],
                 id="unknown-tls-refusal"),
    pytest.param([b"status/", status_payload(tls_refused=[["listener", "expired"]])],
                 id="tls-refusal-without-count"),
    pytest.param([b"status/", status_payload(certificates={"listener": -1})],
                 id="negative-certificate-expiry"),
    pytest.param([b"status/", status_payload(certificates={"listener": "soon"})],
                 id="certificate-expiry-not-a-number"),
    pytest.param([b"status/", status_payload(certificates={"moon": 1.0})],
                 id="certificate-of-an-unknown-side"),
    pytest.param([b"status/", b'{"v":1,"kind":"status","worker":"0#0","pid":1,"state":"ready",'
                              b'"seq":1,"active_calls":0,"stats":[]}'], id="stats-not-an-object"),
]


@pytest.mark.parametrize("frames", MALFORMED)
def test_malformed_frames_are_refused_as_malformed(frames: list[bytes]) -> None:
    with pytest.raises(MalformedMessageError):
        decode(frames)


def test_a_deeply_nested_payload_is_refused_as_malformed() -> None:
    with pytest.raises(MalformedMessageError):
        decode([b"heartbeat/", b"[" * 100_000])
