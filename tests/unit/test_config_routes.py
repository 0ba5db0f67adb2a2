"""LISTEN-TARGET splitting, the errors that name the wrong part, and routes sharing ports."""

from __future__ import annotations

import pytest

from gproxy_mp.config import (
    DnsTarget,
    KubernetesTarget,
    ListenAddress,
    Route,
    Settings,
    StaticTarget,
    Target,
    check_admin,
    check_routes,
    parse_admin_address,
    parse_route,
)
from gproxy_mp.errors import ConfigError
from gproxy_mp.model import Endpoint

ROUTES: list[tuple[str, ListenAddress, Target]] = [
    ("my-host:5000-dns:///svc:5000", ListenAddress("my-host", 5000), DnsTarget("svc", 5000)),
    ("127.0.0.1:5000-static:///10.0.0.1:50051,10.0.0.2:50051",
     ListenAddress("127.0.0.1", 5000),
     StaticTarget((Endpoint("10.0.0.1", 50051), Endpoint("10.0.0.2", 50051)))),
    ("[::1]:5000-kubernetes:///a-b.ns:grpc", ListenAddress("::1", 5000),
     KubernetesTarget("a-b", "grpc", "ns")),
    (":5000-my-svc:50051", ListenAddress("", 5000), DnsTarget("my-svc", 50051)),
    ("a-b:1-c-d:2", ListenAddress("a-b", 1), DnsTarget("c-d", 2)),
    (":5000-kubernetes://my-ns/my-svc:grpc-web", ListenAddress("", 5000),
     KubernetesTarget("my-svc", "grpc-web", "my-ns")),
]

BAD_ROUTES = [
    ("nonsense", "expected LISTEN-TARGET"),
    ("a-b", "expected LISTEN-TARGET"),
    ("", "expected LISTEN-TARGET"),
    (":5000-foo:///svc:1", "unknown scheme 'foo'"),
    (":5000-dns:///svc", "missing port"),
    (":5000-svc", "missing port"),
    (":70000-dns:///svc:5000", "out of range"),
    ("127.0.0.1:0-static:///10.0.0.1:1", "out of range"),
    ("[::1]:5000-kubernetes:///a-b.ns:Grpc", "'Grpc' is neither"),
]


@pytest.mark.parametrize(("text", "listen", "target"), ROUTES)
def test_a_route_splits_at_the_dash_between_a_listen_address_and_a_target(
    text: str, listen: ListenAddress, target: Target
) -> None:
    route = parse_route(text, index=3)
    assert (route.listen, route.target) == (listen, target)
    assert route.spec == text
    assert route.id == "3"


@pytest.mark.parametrize(("text", "complaint"), BAD_ROUTES)
def test_a_bad_route_is_refused_naming_the_wrong_part(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_route(text, index=0)
    assert repr(text) in str(caught.value)
    assert complaint in str(caught.value)


def routes(*texts: str) -> tuple[Route, ...]:
    return tuple(parse_route(text, index=i) for i, text in enumerate(texts))


ROUTE_SETS_THAT_FIT = [
    ("127.0.0.1:5000-a:1", "127.0.0.1:5001-a:1"),
    ("127.0.0.1:5000-a:1", "127.0.0.2:5000-a:1"),
    (":5000-a:1", ":5001-a:1", "127.0.0.1:5002-b:1"),
]

ROUTE_SETS_THAT_CLASH = [
    (":5000-a:1", ":5000-b:1"),
    ("127.0.0.1:5000-a:1", "127.0.0.1:5000-b:1"),
    (":5000-a:1", "127.0.0.1:5000-b:1"),
    ("127.0.0.1:5000-a:1", ":5000-b:1"),
]


@pytest.mark.parametrize("texts", ROUTE_SETS_THAT_FIT)
def test_routes_on_different_ports_or_hosts_fit_together(texts: tuple[str, ...]) -> None:
    check_routes(routes(*texts))


@pytest.mark.parametrize("texts", ROUTE_SETS_THAT_CLASH)
def test_a_listen_port_used_twice_on_overlapping_addresses_is_refused(
    texts: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_routes(routes(*texts))
    assert repr(texts[-1]) in str(caught.value)
    assert "already used" in str(caught.value)


def test_a_third_route_clashing_with_the_first_is_refused() -> None:
    with pytest.raises(ConfigError):
        check_routes(routes("127.0.0.1:5000-a:1", "127.0.0.2:5000-b:1", "127.0.0.1:5000-c:1"))


def test_settings_name_each_distinct_target_once_in_first_use_order() -> None:
    settings = Settings(routes=routes(
        ":5000-dns:///b:1",
        ":5001-static:///10.0.0.2:1,10.0.0.1:1",
        ":5002-b:1",  # the same target as the first, written without a scheme
        ":5003-static:///10.0.0.1:1,10.0.0.2:1,10.0.0.1:1",
        ":5004-kubernetes:///svc:grpc",
    ))
    assert settings.targets == (
        DnsTarget("b", 1),
        StaticTarget((Endpoint("10.0.0.1", 1), Endpoint("10.0.0.2", 1))),
        KubernetesTarget("svc", "grpc"),
    )


def test_a_route_is_named_by_its_listen_address() -> None:
    assert parse_route("[::1]:5000-b:1", index=0).name == "[::1]:5000"


@pytest.mark.parametrize(("admin", "clashes"), [
    ("127.0.0.1:5000", True), (":5000", True), ("127.0.0.2:5000", False),
    ("127.0.0.1:5001", False),
])
def test_the_admin_address_may_not_take_a_listen_address(admin: str, clashes: bool) -> None:
    listen = parse_admin_address(admin)
    if not clashes:
        check_admin(listen, routes("127.0.0.1:5000-a:1"))
        return
    with pytest.raises(ConfigError, match=r"--admin-address .*5000: already the listen address"):
        check_admin(listen, routes("127.0.0.1:5000-a:1"))


def test_a_very_long_proxy_value_is_refused_with_a_shortened_quote() -> None:
    text = "-" * 100_000
    with pytest.raises(ConfigError) as caught:
        parse_route(text, index=0)
    message = str(caught.value)
    assert "(100000 characters)" in message
    assert len(message) < 1000
