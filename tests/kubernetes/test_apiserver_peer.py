"""The real peer works: what the resolver's tests rely on about etcd + kube-apiserver.

If one of these fails, the resolver tests' failures say nothing about the resolver.
"""

from __future__ import annotations

import json
import queue
from typing import Any

import pytest
from kubernetes.client import VersionApi
from kubernetes.client.exceptions import ApiException

from harness.kube.binaries import wanted_version
from harness.kube.cluster import (
    JSON,
    Apis,
    Kube,
    SliceWatch,
    endpoint,
    service_port,
    slice_port,
)
from harness.kube.controlplane import ControlPlane
from harness.kube.netns import BACKEND_ADDRESS_V6, BACKEND_ADDRESSES, NetworkNamespace

WATCH_EVENT_TIMEOUT = 10.0
"""Seconds a watch may take to deliver an event the test just caused."""
READ_SLICES = [
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["get", "list", "watch"],
    },
]
ONLY_GET_SERVICES = [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]


def status_message(error: ApiException) -> str:
    """The human-readable ``message`` of the Status object an API error carries."""
    message: str = json.loads(error.body)["message"]
    return message


def addresses(stored: JSON) -> list[str]:
    return [e["addresses"][0] for e in stored["endpoints"]]


def next_event(watch: SliceWatch) -> tuple[str, JSON]:
    try:
        item = watch.next(timeout=WATCH_EVENT_TIMEOUT)
    except queue.Empty:
        pytest.fail(f"no watch event within {WATCH_EVENT_TIMEOUT}s")
    assert isinstance(item, tuple), f"watch ended instead: {item!r}"
    return item


def next_change(watch: SliceWatch) -> tuple[str, JSON]:
    """The next event that is not a BOOKMARK."""
    while True:
        kind, obj = next_event(watch)
        if kind != "BOOKMARK":
            return kind, obj


@pytest.fixture
def service(kube: Kube, kube_namespace: str) -> str:
    kube.create_service(kube_namespace, "echo", [service_port(50051, name="grpc")])
    return "echo"


def test_the_api_server_is_ready_and_reports_the_pinned_version(kube: Kube) -> None:
    def version(a: Apis) -> Any:
        return VersionApi(a.api_client).get_code()

    assert kube.call(version).git_version == wanted_version()


def test_a_headless_service_and_a_hand_made_slice_are_accepted(
    kube: Kube, kube_namespace: str, service: str
) -> None:
    stored = kube.create_slice(
        kube_namespace,
        service,
        endpoints=[
            endpoint(BACKEND_ADDRESSES[0]),
            endpoint(BACKEND_ADDRESSES[1], ready=False, serving=True, terminating=True),
        ],
        ports=[slice_port(50051, name="grpc")],
    )
    listed = kube.list_slices(kube_namespace, service)["items"]

    assert [addresses(s) for s in listed] == [list(BACKEND_ADDRESSES[:2])]
    # nil conditions stay nil: the resolver must apply the API's defaults itself
    assert listed[0]["endpoints"][0]["conditions"] == {}
    assert listed[0]["endpoints"][1]["conditions"] == {
        "ready": False,
        "serving": True,
        "terminating": True,
    }
    assert stored["metadata"]["labels"]["kubernetes.io/service-name"] == service


def test_an_ipv6_slice_is_accepted(kube: Kube, kube_namespace: str, service: str) -> None:
    stored = kube.create_slice(
        kube_namespace,
        service,
        address_type="IPv6",
        endpoints=[endpoint(BACKEND_ADDRESS_V6)],
        ports=[slice_port(50051, name="grpc")],
    )
    assert addresses(stored) == [BACKEND_ADDRESS_V6]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3"])
def test_a_loopback_endpoint_address_is_rejected(
    kube: Kube, kube_namespace: str, service: str, address: str
) -> None:
    """Why the tier needs its own network namespace."""
    with pytest.raises(ApiException) as raised:
        kube.create_slice(kube_namespace, service, endpoints=[endpoint(address)])
    assert raised.value.status == 422
    assert "may not be in the loopback range" in status_message(raised.value)


def test_a_watch_with_a_label_selector_sees_only_its_service(
    kube: Kube, kube_namespace: str, service: str, network_namespace: NetworkNamespace
) -> None:
    kube.create_service(kube_namespace, "other", [service_port(50051, name="grpc")])
    stored = kube.create_slice(kube_namespace, service, endpoints=[endpoint(BACKEND_ADDRESSES[0])])
    watch = SliceWatch(
        kube,
        network_namespace,
        kube_namespace=kube_namespace,
        service=service,
        resource_version=stored["metadata"]["resourceVersion"],
    )
    try:
        kube.create_slice(kube_namespace, "other", endpoints=[endpoint(BACKEND_ADDRESSES[2])])
        kube.replace_slice(kube_namespace, stored, endpoints=[endpoint(BACKEND_ADDRESSES[1])])

        kind, obj = next_change(watch)
        assert (kind, addresses(obj)) == ("MODIFIED", [BACKEND_ADDRESSES[1]])

        kube.delete_slice(kube_namespace, stored["metadata"]["name"])
        kind, obj = next_change(watch)
        assert (kind, obj["metadata"]["name"]) == ("DELETED", stored["metadata"]["name"])
    finally:
        watch.close()


def test_the_limited_static_user_is_forbidden_to_list_endpointslices(
    kube: Kube, kube_namespace: str, credentials: Any
) -> None:
    limited = kube.with_token(credentials.limited_token)
    with pytest.raises(ApiException) as raised:
        limited.list_slices(kube_namespace, "echo")
    assert raised.value.status == 403
    assert 'User "limited" cannot list resource "endpointslices"' in status_message(raised.value)


def test_a_service_account_token_gets_exactly_its_role(kube: Kube, kube_namespace: str) -> None:
    kube.create_service_account(kube_namespace, "reader", rules=READ_SLICES)
    kube.create_service_account(kube_namespace, "getter", rules=ONLY_GET_SERVICES)
    reader = kube.with_token(kube.service_account_token(kube_namespace, "reader"))
    getter = kube.with_token(kube.service_account_token(kube_namespace, "getter"))

    assert reader.list_slices(kube_namespace, "echo")["items"] == []
    with pytest.raises(ApiException) as raised:
        getter.list_slices(kube_namespace, "echo")
    assert raised.value.status == 403
    assert (
        f'User "system:serviceaccount:{kube_namespace}:getter" cannot list resource '
        f'"endpointslices" in API group "discovery.k8s.io" in the namespace "{kube_namespace}"'
    ) in status_message(raised.value)


def test_the_apiserver_restarts_with_its_data(
    kube: Kube, kube_namespace: str, service: str, control_plane: ControlPlane
) -> None:
    stored = kube.create_slice(kube_namespace, service, endpoints=[endpoint(BACKEND_ADDRESSES[0])])
    control_plane.restart_apiserver()
    listed = kube.list_slices(kube_namespace, service)["items"]
    assert [s["metadata"]["name"] for s in listed] == [stored["metadata"]["name"]]


def test_a_watch_from_before_expired_history_fails_with_410(
    kube: Kube,
    kube_namespace: str,
    service: str,
    control_plane: ControlPlane,
    network_namespace: NetworkNamespace,
) -> None:
    stored = kube.create_slice(kube_namespace, service, endpoints=[endpoint(BACKEND_ADDRESSES[0])])
    old = stored["metadata"]["resourceVersion"]
    kube.replace_slice(kube_namespace, stored, endpoints=[endpoint(BACKEND_ADDRESSES[1])])
    compacted = control_plane.expire_history()
    assert compacted > int(old)

    watch = SliceWatch(
        kube,
        network_namespace,
        kube_namespace=kube_namespace,
        service=service,
        resource_version=old,
    )
    try:
        item = watch.next(timeout=WATCH_EVENT_TIMEOUT)
    finally:
        watch.close()
    assert isinstance(item, ApiException), item
    assert item.status == 410
    assert "too old resource version" in str(item.reason)
