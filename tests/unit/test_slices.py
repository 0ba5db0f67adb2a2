"""EndpointSlices and core/v1 Endpoints → endpoint sets: merging, conditions, addresses, ports.

Every input is a raw dict shaped like the API server's JSON, as the resolver receives it.
"""

from __future__ import annotations

from typing import Any

import pytest

from gproxy_mp.supervisor.resolvers.slices import (
    Selection,
    select_from_endpoints,
    select_from_slices,
    service_port_names,
)

Json = dict[str, Any]

GRPC_8080 = [{"name": "grpc", "port": 8080, "protocol": "TCP"}]


def endpoint(*addresses: str, **conditions: bool) -> Json:
    return {"addresses": list(addresses), "conditions": conditions}


def endpoint_slice(name: str, endpoints: list[Json], *, ports: list[Json] | None = None,
                   address_type: str = "IPv4") -> Json:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "gproxy-mp-tests"}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": GRPC_8080 if ports is None else ports,
    }


def ready_ips(prefix: str, first: int, last: int) -> list[Json]:
    return [endpoint(f"{prefix}.{i}", ready=True) for i in range(first, last + 1)]


# Three slices, 135 entries, 120 distinct addresses: 10.0.0.41-50 are in web-a and web-b,
# 10.0.0.1-5 are in web-a and web-c (as during controller churn).
LARGE_SLICES: dict[str, Json] = {
    "web-a": endpoint_slice("web-a", ready_ips("10.0.0", 1, 50)),
    "web-b": endpoint_slice("web-b", ready_ips("10.0.0", 41, 90)),
    "web-c": endpoint_slice("web-c", ready_ips("10.0.1", 1, 30) + ready_ips("10.0.0", 1, 5)),
}
LARGE_ADDRESSES = sorted({f"10.0.0.{i}:8080" for i in range(1, 91)}
                         | {f"10.0.1.{i}:8080" for i in range(1, 31)})
WITHOUT_WEB_B = sorted({f"10.0.0.{i}:8080" for i in range(1, 51)}
                       | {f"10.0.1.{i}:8080" for i in range(1, 31)})


def addresses(selection: Selection) -> list[str]:
    return sorted(e.address for e in selection.endpoints)


def test_all_slices_of_a_service_are_merged_and_duplicates_count_once() -> None:
    selection = select_from_slices(LARGE_SLICES, port="grpc", service_ports={})
    assert sum(len(s["endpoints"]) for s in LARGE_SLICES.values()) == 135
    assert addresses(selection) == LARGE_ADDRESSES
    assert len(selection.endpoints) == 120
    assert selection.per_slice == {"web-a": 50, "web-b": 50, "web-c": 35}


def test_removing_a_slice_removes_only_the_endpoints_no_other_slice_holds() -> None:
    remaining = {name: s for name, s in LARGE_SLICES.items() if name != "web-b"}
    selection = select_from_slices(remaining, port="grpc", service_ports={})
    assert addresses(selection) == WITHOUT_WEB_B  # 10.0.0.41-50 stay: web-a holds them too


def test_the_set_is_sorted_whatever_the_order_of_slices_and_endpoints() -> None:
    reordered = {name: LARGE_SLICES[name] for name in ("web-c", "web-a", "web-b")}
    selection = select_from_slices(reordered, port="grpc", service_ports={})
    assert selection.endpoints == tuple(sorted(selection.endpoints))
    assert selection == select_from_slices(LARGE_SLICES, port="grpc", service_ports={})


# (endpoints of one slice, chosen addresses, fallback)
CONDITIONS = [
    pytest.param([{"addresses": ["10.0.0.1"]}], ["10.0.0.1:8080"], False,
                 id="no-conditions-is-ready"),
    pytest.param([endpoint("10.0.0.1")], ["10.0.0.1:8080"], False, id="ready-nil-is-ready"),
    pytest.param([endpoint("10.0.0.1", ready=True), endpoint("10.0.0.2", ready=False)],
                 ["10.0.0.1:8080"], False, id="ready-false-is-excluded"),
    pytest.param([endpoint("10.0.0.1", ready=True, serving=True, terminating=True)],
                 ["10.0.0.1:8080"], False, id="ready-wins-over-terminating"),
    pytest.param([endpoint("10.0.0.1", ready=False, serving=True, terminating=True),
                  endpoint("10.0.0.2", ready=False, serving=True, terminating=True),
                  endpoint("10.0.0.3", ready=False, serving=False, terminating=False)],
                 ["10.0.0.1:8080", "10.0.0.2:8080"], True,
                 id="none-ready-falls-back-to-serving-terminating"),
    pytest.param([endpoint("10.0.0.1", ready=True),
                  endpoint("10.0.0.2", ready=False, serving=True, terminating=True)],
                 ["10.0.0.1:8080"], False, id="draining-unused-while-one-is-ready"),
    pytest.param([endpoint("10.0.0.1", ready=False, terminating=True)],
                 [], False, id="serving-nil-defers-to-ready-false"),
    pytest.param([endpoint("10.0.0.1", ready=False, serving=False, terminating=True)],
                 [], False, id="terminating-not-serving-is-excluded"),
    pytest.param([endpoint("10.0.0.1", ready=False, serving=True)],
                 [], False, id="serving-not-terminating-is-excluded"),
    pytest.param([], [], False, id="no-endpoints"),
]


@pytest.mark.parametrize(("endpoints", "expected", "fallback"), CONDITIONS)
def test_ready_endpoints_are_used_and_draining_ones_only_when_none_is_ready(
        endpoints: list[Json], expected: list[str], fallback: bool) -> None:
    selection = select_from_slices({"web-a": endpoint_slice("web-a", endpoints)},
                                   port="grpc", service_ports={})
    assert addresses(selection) == expected
    assert selection.fallback is fallback


def test_the_fallback_applies_to_the_merged_set_not_per_slice() -> None:
    slices = {
        "web-a": endpoint_slice("web-a", [endpoint("10.0.0.1", ready=True)]),
        "web-b": endpoint_slice("web-b", [
            endpoint("10.0.0.2", ready=False, serving=True, terminating=True)]),
    }
    selection = select_from_slices(slices, port="grpc", service_ports={})
    assert addresses(selection) == ["10.0.0.1:8080"]
    assert selection.fallback is False


def test_fqdn_slices_are_ignored_and_reported() -> None:
    slices = {
        "web-a": endpoint_slice("web-a", [endpoint("10.0.0.1")]),
        "web-fqdn": endpoint_slice("web-fqdn", [endpoint("backend.example.com")],
                                   address_type="FQDN"),
    }
    selection = select_from_slices(slices, port="grpc", service_ports={})
    assert addresses(selection) == ["10.0.0.1:8080"]
    assert selection.ignored_fqdn_slices == ("web-fqdn",)
    assert "web-fqdn" not in selection.per_slice


def test_ipv6_slices_give_bracketed_addresses() -> None:
    slices = {
        "web-v4": endpoint_slice("web-v4", [endpoint("10.0.0.1")]),
        "web-v6": endpoint_slice("web-v6", [endpoint("fd00::1"), endpoint("fd00::2")],
                                 address_type="IPv6"),
    }
    selection = select_from_slices(slices, port="grpc", service_ports={})
    assert addresses(selection) == ["10.0.0.1:8080", "[fd00::1]:8080", "[fd00::2]:8080"]
    assert selection.ignored_fqdn_slices == ()


def test_endpoints_without_addresses_are_skipped() -> None:
    endpoints = [{"conditions": {"ready": True}}, endpoint(ready=True), endpoint("10.0.0.1")]
    selection = select_from_slices({"web-a": endpoint_slice("web-a", endpoints)},
                                   port="grpc", service_ports={})
    assert addresses(selection) == ["10.0.0.1:8080"]
    assert selection.per_slice == {"web-a": 1}


def test_the_first_address_of_an_endpoint_is_used() -> None:
    endpoints = [endpoint("10.0.0.9", "10.0.0.1", "10.0.0.5")]
    selection = select_from_slices({"web-a": endpoint_slice("web-a", endpoints)},
                                   port="grpc", service_ports={})
    assert addresses(selection) == ["10.0.0.9:8080"]


WEB_SERVICE: Json = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    "spec": {"ports": [
        {"name": "grpc", "port": 80, "targetPort": "grpc-port", "protocol": "TCP"},
        {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"},
    ]},
}
UNNAMED_SERVICE: Json = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
}
TWO_NUMBERS_ONE_NAME: dict[str, Json] = {
    "web-a": endpoint_slice("web-a", [endpoint("10.0.0.1")],
                            ports=[{"name": "metrics", "port": 9100, "protocol": "TCP"},
                                   {"name": "grpc", "port": 8080, "protocol": "TCP"}]),
    "web-b": endpoint_slice("web-b", [endpoint("10.0.0.2")],
                            ports=[{"name": "grpc", "port": 9090, "protocol": "TCP"},
                                   {"name": "metrics", "port": 9100, "protocol": "TCP"}]),
}


def one_slice(ports: list[Json]) -> dict[str, Json]:
    return {"web-a": endpoint_slice("web-a", [endpoint("10.0.0.1")], ports=ports)}


# (slices, wanted port, Service, chosen addresses, slices without the port)
PORTS = [
    pytest.param(TWO_NUMBERS_ONE_NAME, "grpc", None, ["10.0.0.1:8080", "10.0.0.2:9090"], (),
                 id="name-matches-per-slice"),
    pytest.param(TWO_NUMBERS_ONE_NAME, 80, WEB_SERVICE, ["10.0.0.1:8080", "10.0.0.2:9090"],
                 (), id="service-port-number-maps-through-its-name"),
    pytest.param(TWO_NUMBERS_ONE_NAME, 9100, WEB_SERVICE, ["10.0.0.1:9100", "10.0.0.2:9100"],
                 (), id="second-service-port-number"),
    pytest.param(TWO_NUMBERS_ONE_NAME, 7000, WEB_SERVICE, ["10.0.0.1:7000", "10.0.0.2:7000"],
                 (), id="number-not-a-service-port-used-as-is"),
    pytest.param(TWO_NUMBERS_ONE_NAME, 8080, None, ["10.0.0.1:8080", "10.0.0.2:8080"], (),
                 id="number-without-service-used-as-is"),
    pytest.param(one_slice([{"port": 8080, "protocol": "TCP"}]), 80, UNNAMED_SERVICE,
                 ["10.0.0.1:8080"], (), id="unnamed-single-port-name-missing"),
    pytest.param(one_slice([{"name": "", "port": 8080, "protocol": "TCP"}]), 80,
                 UNNAMED_SERVICE, ["10.0.0.1:8080"], (), id="unnamed-single-port-name-empty"),
    pytest.param({**TWO_NUMBERS_ONE_NAME, "web-c": endpoint_slice(
        "web-c", [endpoint("10.0.0.3")], ports=[{"name": "metrics", "port": 9100}])},
        "grpc", None, ["10.0.0.1:8080", "10.0.0.2:9090"], ("web-c",),
        id="slice-without-the-port-is-reported"),
    pytest.param(one_slice([{"name": "grpc", "port": None, "protocol": "TCP"}]), "grpc",
                 None, [], ("web-a",), id="port-null-is-skipped"),
    pytest.param(one_slice([{"name": "grpc", "port": None, "protocol": "TCP"},
                            {"name": "grpc", "port": 8080, "protocol": "TCP"}]), "grpc",
                 None, ["10.0.0.1:8080"], (), id="port-null-skipped-for-a-later-match"),
    pytest.param(one_slice([]), "grpc", None, [], ("web-a",), id="slice-with-no-ports"),
]


@pytest.mark.parametrize(("slices", "port", "service", "expected", "without_port"), PORTS)
def test_the_backend_port_is_chosen_per_slice(
        slices: dict[str, Json], port: int | str, service: Json | None, expected: list[str],
        without_port: tuple[str, ...]) -> None:
    selection = select_from_slices(slices, port=port, service_ports=service_port_names(service))
    assert addresses(selection) == expected
    assert selection.slices_without_port == without_port


SERVICE_PORT_NAMES = [
    pytest.param(None, {}, id="no-service"),
    pytest.param({}, {}, id="empty-object"),
    pytest.param({"spec": {}}, {}, id="no-ports"),
    pytest.param(WEB_SERVICE, {80: "grpc", 9100: "metrics"}, id="named-ports"),
    pytest.param(UNNAMED_SERVICE, {80: ""}, id="unnamed-single-port"),
]


@pytest.mark.parametrize(("service", "names"), SERVICE_PORT_NAMES)
def test_service_port_numbers_map_to_their_names(service: Json | None,
                                                 names: dict[int, str]) -> None:
    assert service_port_names(service) == names


CORE_ENDPOINTS: Json = {
    "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
    "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
         "notReadyAddresses": [{"ip": "10.0.0.3"}],
         "ports": [{"name": "metrics", "port": 9100}, {"name": "grpc", "port": 8080}]},
        {"addresses": [{"ip": "10.0.1.1"}],
         "ports": [{"name": "grpc", "port": 9090}]},
        {"addresses": [{"ip": "10.0.2.1"}],
         "ports": [{"name": "metrics", "port": 9100}]},
        {"notReadyAddresses": [{"ip": "10.0.3.1"}],
         "ports": [{"name": "grpc", "port": 8080}]},
    ],
}

# (Endpoints object, wanted port, Service, chosen addresses)
CORE = [
    pytest.param(CORE_ENDPOINTS, "grpc", None,
                 ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.1:9090"], id="by-name"),
    pytest.param(CORE_ENDPOINTS, 80, WEB_SERVICE,
                 ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.1:9090"], id="service-number"),
    pytest.param(CORE_ENDPOINTS, "metrics", None,
                 ["10.0.0.1:9100", "10.0.0.2:9100", "10.0.2.1:9100"], id="other-name"),
    pytest.param({"metadata": {"name": "web"}}, "grpc", None, [], id="no-subsets"),
    pytest.param(None, "grpc", None, [], id="no-object"),
]


@pytest.mark.parametrize(("endpoints", "port", "service", "expected"), CORE)
def test_core_endpoints_give_ready_addresses_only_with_the_port_chosen_per_subset(
        endpoints: Json | None, port: int | str, service: Json | None,
        expected: list[str]) -> None:
    selection = select_from_endpoints(endpoints, port=port,
                                      service_ports=service_port_names(service))
    assert addresses(selection) == expected
    assert selection.fallback is False


def test_each_chosen_endpoint_is_described_with_its_conditions_zone_node_and_slice() -> None:
    slices = {"web-x": {
        "addressType": "IPv4", "ports": [{"name": "grpc", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.0.0.1"], "zone": "z1", "nodeName": "n1"},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
        ]}}
    selection = select_from_slices(slices, port="grpc", service_ports={})
    assert selection.details == {"10.0.0.1:8080": {
        "ready": True, "serving": True, "terminating": False, "zone": "z1", "node": "n1",
        "slice": "web-x"}}


def test_a_slice_with_endpoints_and_no_ports_gives_nothing_and_is_reported() -> None:
    """Seen with the real EndpointSlice controller (tests/cluster, targetPort renamed): pods
    that lack the Service's named targetPort are listed in a slice of their own with
    ``ports: null``, beside the slice of the pods that have it."""
    portless = endpoint_slice("web-old", [endpoint("10.0.0.9", ready=False, serving=True,
                                                   terminating=True)])
    portless["ports"] = None
    slices = {"web-old": portless, "web-new": endpoint_slice("web-new", [endpoint("10.0.0.1")])}

    selection = select_from_slices(slices, port="grpc", service_ports={})

    assert {e.host for e in selection.endpoints} == {"10.0.0.1"}
    assert not selection.fallback
    assert selection.slices_without_port == ("web-old",)
