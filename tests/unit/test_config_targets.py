"""TARGET: every scheme and form the config module's docstring promises, and the refusals."""

from __future__ import annotations

import pytest

from gproxy_mp.config import (
    DnsTarget,
    KubernetesTarget,
    StaticTarget,
    Target,
    parse_target,
)
from gproxy_mp.errors import ConfigError
from gproxy_mp.model import Endpoint

TARGETS: list[tuple[str, Target]] = [
    ("kubernetes:///svc:8080", KubernetesTarget("svc", 8080)),
    ("kubernetes:///svc:grpc", KubernetesTarget("svc", "grpc")),
    ("kubernetes:///svc.ns:8080", KubernetesTarget("svc", 8080, "ns")),
    ("kubernetes:///svc.ns.svc.cluster.local:8080", KubernetesTarget("svc", 8080, "ns")),
    ("kubernetes:///svc.ns.svc:8080", KubernetesTarget("svc", 8080, "ns")),
    ("kubernetes://ns/svc:grpc-web", KubernetesTarget("svc", "grpc-web", "ns")),
    ("kubernetes:///a-b.ns:grpc", KubernetesTarget("a-b", "grpc", "ns")),
    ("dns:///backend:50051", DnsTarget("backend", 50051)),
    ("dns:///[::1]:50051", DnsTarget("::1", 50051)),
    ("dns://8.8.8.8/backend:50051", DnsTarget("backend", 50051, Endpoint("8.8.8.8", 53))),
    ("dns://8.8.8.8:5353/backend:50051",
     DnsTarget("backend", 50051, Endpoint("8.8.8.8", 5353))),
    ("dns://ns1.example/backend:50051",
     DnsTarget("backend", 50051, Endpoint("ns1.example", 53))),
    ("dns://[::1]:5353/backend:50051", DnsTarget("backend", 50051, Endpoint("::1", 5353))),
    ("static:///10.0.0.1:50051", StaticTarget((Endpoint("10.0.0.1", 50051),))),
    ("static:///[2001:db8::1]:50051,backend:1",
     StaticTarget((Endpoint("2001:db8::1", 50051), Endpoint("backend", 1)))),
    ("static:///10.0.0.2:50051,10.0.0.1:50051,10.0.0.2:50051",
     StaticTarget((Endpoint("10.0.0.1", 50051), Endpoint("10.0.0.2", 50051)))),
    ("static:///10.0.0.1:2, 10.0.0.1:1 ,",
     StaticTarget((Endpoint("10.0.0.1", 1), Endpoint("10.0.0.1", 2)))),
    ("backend:50051", DnsTarget("backend", 50051)),
    ("[::1]:50051", DnsTarget("::1", 50051)),
    ("10.0.0.1:50051", DnsTarget("10.0.0.1", 50051)),
]

BAD_TARGETS = [
    ("foo:///x:1", "unknown scheme 'foo'"),
    ("dns:backend:1", "need brackets"),  # no "://": read as the host:port "dns:backend", 1
    ("dns://backend:1", "expected dns://[authority]/"),
    ("dns:///backend", "missing port"),
    ("dns:///backend:0", "out of range"),
    ("dns://[::1]:x/backend:1", "not a number"),
    ("kubernetes:///svc", "missing port"),
    ("kubernetes:///Svc:80", "not a valid Service name"),
    ("kubernetes:///1svc:80", "not a valid Service name"),
    ("kubernetes:///svc-:80", "not a valid Service name"),
    ("kubernetes:///svc_x:80", "not a valid Service name"),
    ("kubernetes:///svc.Bad_NS:80", "not a valid namespace"),
    ("kubernetes://Bad_NS/svc:80", "not a valid namespace"),
    ("kubernetes:///svc.ns.other:80", "expected svc, svc.ns or svc.ns.svc"),
    ("kubernetes://ns/svc.other:80", "name only the service"),
    ("kubernetes:///svc:Grpc", "neither a number nor a port name"),
    ("kubernetes:///svc:grpc--web", "neither a number nor a port name"),
    ("kubernetes:///svc:-grpc", "neither a number nor a port name"),
    ("kubernetes:///svc:a-very-long-port-name", "neither a number nor a port name"),
    ("kubernetes:///svc:70000", "out of range"),
    ("static:///", "no endpoints listed"),
    ("static:///, ,", "no endpoints listed"),
    ("static://host/10.0.0.1:1", "no authority"),
    ("static:///10.0.0.1", "missing port"),
    ("static:///10.0.0.1:1,fe80::1:2", "need brackets"),
    ("static:///-bad:1", "not a valid host name"),
    ("backend", "missing port"),
    (":50051", "missing host"),
]


@pytest.mark.parametrize(("text", "target"), TARGETS)
def test_every_target_form_parses_to_its_value(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(("text", "complaint"), BAD_TARGETS)
def test_a_bad_target_is_refused_naming_it(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_target(text)
    assert repr(text) in str(caught.value)
    assert complaint in str(caught.value)


@pytest.mark.parametrize("text", [text for text, _ in TARGETS])
def test_a_target_printed_parses_back_to_itself(text: str) -> None:
    target = parse_target(text)
    assert parse_target(str(target)) == target


def test_a_scheme_less_target_means_dns() -> None:
    assert parse_target("backend:50051") == parse_target("dns:///backend:50051")


def test_static_endpoints_print_deduplicated_and_sorted() -> None:
    target = parse_target("static:///[::1]:2,10.0.0.2:1,10.0.0.1:1,10.0.0.2:1")
    assert str(target) == "static:///10.0.0.1:1,10.0.0.2:1,[::1]:2"


def test_a_bracketed_v6_dns_server_without_a_port_defaults_to_53() -> None:
    assert parse_target("dns://[::1]/backend:50051") == DnsTarget(
        "backend", 50051, Endpoint("::1", 53))
