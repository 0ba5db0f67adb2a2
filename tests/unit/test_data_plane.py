"""`--data-plane native` refuses, with one line, the options the engine does not do yet, and
takes the rest (both balancers, every locality mode, health checks); the engine's counters
line up with the bus schema's."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from gproxy_mp.bus.schema import LATENCY_BUCKETS
from gproxy_mp.cli import build_settings, command
from gproxy_mp.config import Settings, WorkerOptions
from gproxy_mp.dataplane import check_data_plane
from gproxy_mp.errors import ConfigError
from gproxy_mp.worker.planes.listener import listen_sockaddrs, split_bind_address

NATIVE = WorkerOptions(data_plane="native")

GRPCIO_ONLY = [
    ({"unary_methods": ("/a.B/C",)}, "--unary-methods"),
    ({"schema_unary_methods": ("/a.B/C",)}, "--proto-descriptor-set"),
    ({"event_loop": "asyncio"}, "--event-loop asyncio"),
    ({"grpc_engine": "event-engine"}, "--grpc-engine event-engine"),
]


def refused_line(options: WorkerOptions) -> str:
    """The one line `check_data_plane` refuses ``options`` with; the grpcio plane takes them."""
    with pytest.raises(ConfigError) as raised:
        check_data_plane(options)
    assert "\n" not in str(raised.value)
    assert replace(options, data_plane="grpcio") != options
    check_data_plane(replace(options, data_plane="grpcio"))
    return str(raised.value)


@pytest.mark.parametrize(("fields", "named"), GRPCIO_ONLY, ids=[r[1] for r in GRPCIO_ONLY])
def test_an_option_of_the_grpcio_plane_only_is_refused_saying_so(
    fields: dict[str, object], named: str
) -> None:
    line = refused_line(replace(NATIVE, **fields))  # type: ignore[arg-type]
    assert line.startswith(f"{named} tunes the grpcio data plane only"), line
    assert "--data-plane grpcio" in line


@pytest.mark.parametrize("fields", [{"access_log": True}, {"metrics_method_label": True}],
                         ids=["--access-log", "--metrics-method-label"])
def test_the_native_engine_takes_the_access_log_and_the_method_label(
    fields: dict[str, object],
) -> None:
    check_data_plane(replace(NATIVE, **fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("service", ["", "nosuch.Svc"])
def test_the_native_engine_takes_health_checks(service: str) -> None:
    check_data_plane(replace(NATIVE, health_check=service, health_check_interval=0.3))


TLS_OPTIONS = [
    {"tls_cert": "c.pem", "tls_key": "k.pem", "tls_client_ca": "ca.pem"},
    {"backend_tls": True, "backend_ca": "ca.pem", "backend_cert": "c.pem",
     "backend_key": "k.pem", "backend_tls_server_name": "api.example"},
]


@pytest.mark.parametrize("fields", TLS_OPTIONS, ids=["listener", "backend"])
def test_the_native_engine_takes_the_tls_options(fields: dict[str, object]) -> None:
    check_data_plane(replace(NATIVE, **fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("balancer", ["round-robin", "least-request"])
def test_the_native_engine_takes_either_balancer(balancer: str) -> None:
    check_data_plane(replace(NATIVE, balancer=balancer))


def settings_from(args: tuple[str, ...]) -> Settings:
    context = command.make_context("gproxy-mp", list(args))  # click consumes the list
    values = dict(context.params)
    values.pop("check")
    return build_settings(**values)


ROUTE = ("-p", "127.0.0.1:5000-static:///127.0.0.1:1")


def test_the_data_plane_reaches_the_workers_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from(ROUTE).worker.data_plane == "native"
    assert settings_from((*ROUTE, "--data-plane", "grpcio")).worker.data_plane == "grpcio"
    monkeypatch.setenv("GPROXY_DATA_PLANE", "grpcio")
    assert settings_from(ROUTE).worker.data_plane == "grpcio"


def test_the_command_line_refuses_an_option_of_the_grpcio_plane_on_the_default_one() -> None:
    with pytest.raises(ConfigError, match="--unary-methods tunes the grpcio data plane only"):
        settings_from((*ROUTE, "--unary-methods", "/a.B/C"))
    settings_from((*ROUTE, "--unary-methods", "/a.B/C", "--data-plane", "grpcio"))


KUBERNETES_ROUTE = ("-p", "127.0.0.1:5000-kubernetes:///svc.ns:80", "--node-name", "n1")


@pytest.mark.parametrize("locality", ["auto", "node", "zone", "off"])
def test_the_native_engine_takes_every_locality_mode(locality: str) -> None:
    settings = settings_from((*KUBERNETES_ROUTE, "--data-plane", "native",
                              "--locality", locality))
    assert (settings.worker.data_plane, settings.locality) == ("native", locality)


@pytest.mark.parametrize(("address", "expected"), [
    ("127.0.0.1:5000", ("127.0.0.1", 5000)),
    ("[::]:5000", ("::", 5000)),
    ("[::1]:80", ("::1", 80)),
])
def test_a_bind_address_splits_into_host_and_port(address: str,
                                                  expected: tuple[str, int]) -> None:
    assert split_bind_address(address) == expected


@pytest.mark.parametrize(("host", "expected"), [
    ("localhost", [(socket.AF_INET, ("127.0.0.1", 80)), (socket.AF_INET6, ("::1", 80))]),
    ("LOCALHOST.", [(socket.AF_INET, ("127.0.0.1", 80)), (socket.AF_INET6, ("::1", 80))]),
    ("127.0.0.1", [(socket.AF_INET, ("127.0.0.1", 80))]),
    ("::1", [(socket.AF_INET6, ("::1", 80))]),
])
def test_a_listen_host_names_the_addresses_grpc_core_binds(
    host: str, expected: list[tuple[socket.AddressFamily, tuple[str, int]]]
) -> None:
    assert listen_sockaddrs(host, 80) == expected


def test_the_engine_counts_latency_in_the_bus_schemas_buckets() -> None:
    from gproxy_mp import _native  # noqa: PLC0415 (the built engine)

    assert tuple(_native.LATENCY_BUCKETS) == LATENCY_BUCKETS


def test_the_engine_takes_placed_endpoints_and_refuses_an_unknown_locality() -> None:
    from gproxy_mp._native import Engine  # noqa: PLC0415 (the built engine)

    engine = Engine(target="static:///10.0.0.1:1", max_concurrent_streams=10,
                    connect_timeout=1.0)
    placed = [("10.0.0.1:50051", "same_zone", 0), ("10.0.0.2:50051", "other", 1)]
    assert engine.set_endpoints(placed) == 2
    assert engine.set_endpoints([("10.0.0.1:50051", "other", 2)]) == 0  # placed anew
    assert engine.endpoint_count() == 1
    with pytest.raises(ValueError, match="elsewhere"):
        engine.set_endpoints([("10.0.0.3:50051", "elsewhere", 0)])
    assert engine.endpoint_count() == 1
