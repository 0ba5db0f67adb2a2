"""Settings and the grammar of the command line's values: LISTEN-TARGET, targets, DURATION.

Pure functions over strings; every failure is a `ConfigError` whose one-line message names the
offending value. The CLI (click) only maps flags onto these parsers.

    LISTEN-TARGET := LISTEN "-" TARGET        split at the first "-" followed by a valid TARGET
    LISTEN        := host:port | [v6]:port | :port
    TARGET        := kubernetes:///svc[.ns[.svc.cluster.local]]:port  | kubernetes://ns/svc:port
                   | dns:///host:port | dns://server[:port]/host:port | static:///h:p,h:p,[v6]:p
                   | host:port                                          (means dns:///host:port)
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gproxy_mp.errors import ConfigError
from gproxy_mp.model import Endpoint, EndpointSet, build_endpoint_set

if TYPE_CHECKING:  # protobuf, for the supervisor only: a worker imports this module too
    from gproxy_mp.descriptors import DescriptorSet

SCHEMES = ("kubernetes", "dns", "static")
DEFAULT_DNS_PORT = 53

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^(?=.{1,15}$)[a-z0-9]+(-[a-z0-9]+)*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where a route's workers listen. `host` is "" for all interfaces."""

    host: str
    port: int

    @property
    def bind_address(self) -> str:
        """The address handed to gRPC: all interfaces are `[::]` (dual stack)."""
        if not self.host:
            return f"[::]:{self.port}"
        return Endpoint(self.host, self.port).address

    def __str__(self) -> str:
        return f":{self.port}" if not self.host else Endpoint(self.host, self.port).address


@dataclass(frozen=True, slots=True)
class StaticTarget:
    endpoints: EndpointSet

    def __str__(self) -> str:
        return "static:///" + ",".join(e.address for e in self.endpoints)


@dataclass(frozen=True, slots=True)
class DnsTarget:
    host: str
    port: int
    server: Endpoint | None = None  # None: the system resolver configuration

    def __str__(self) -> str:
        authority = self.server.address if self.server else ""
        return f"dns://{authority}/{Endpoint(self.host, self.port).address}"


@dataclass(frozen=True, slots=True)
class KubernetesTarget:
    service: str
    port: int | str  # a number, or a port name
    namespace: str | None = None  # None: the pod's own namespace, else "default"

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else "/"
        return f"kubernetes://{ns}{self.service}:{self.port}"


Target = StaticTarget | DnsTarget | KubernetesTarget


def default_server_name(target: Target, *, namespace: str) -> str | None:
    """The name a backend's TLS certificate is checked against by default: the Service's DNS
    name `svc.ns.svc` (`namespace` when the target names none), the queried name of a dns
    target; None for static targets, where each backend's own host is checked."""
    match target:
        case KubernetesTarget():
            return f"{target.service}.{target.namespace or namespace}.svc"
        case DnsTarget():
            return target.host
        case StaticTarget():
            return None


@dataclass(frozen=True, slots=True)
class Route:
    """One `-p` value: a listen address served by its own workers, forwarding to one target."""

    index: int
    listen: ListenAddress
    target: Target
    spec: str = field(compare=False, default="")

    @property
    def id(self) -> str:
        """The route's bus id (`route/<id>/`) and the prefix of its worker ids."""
        return str(self.index)

    @property
    def name(self) -> str:
        """What logs call the route: its listen address."""
        return str(self.listen)


DEFAULT_CONNECT_TIMEOUT = 2.0
"""Seconds: `--connect-timeout`'s default (`WorkerOptions.connect_timeout`)."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What every worker runs with: it travels to each worker process in its `WorkerConfig`."""

    shutdown_delay: float = 5.0
    """Seconds to keep serving after the first SIGTERM/SIGINT, so endpoints propagate away."""
    drain_timeout: float = 25.0
    """Seconds in-flight calls may take to finish after the delay, before they are cancelled."""
    max_connection_age: float | None = None
    """Seconds (gRPC adds +-10% jitter) after which a client connection gets a GOAWAY, so busy
    long-lived connections re-spread over the workers; None: connections live forever."""
    max_connection_age_grace: float | None = None
    """Seconds calls may still run on a connection after its GOAWAY before it is closed;
    None: until they finish (nothing in flight is cut)."""
    max_concurrent_streams: int = 1000
    """Calls one client connection may have open at once, advertised in HTTP/2 SETTINGS
    (`MAX_CONCURRENT_STREAMS`); a client queues calls beyond it. Bounds a worker's memory
    per connection (each open stream holds buffers in gRPC's core)."""
    log_format: str = "text"
    log_level: str = "info"
    unary_methods: tuple[str, ...] = ()
    """Methods (`/pkg.Svc/Method`, or `/pkg.Svc/*` for a whole service) declared unary: served
    with unary handlers, cheaper per call; a streaming call to one of them fails."""
    event_loop: str = "auto"
    """The workers' asyncio loop: `uvloop`, `asyncio`, or `auto` (uvloop when installed)."""
    grpc_engine: str = "iomgr"
    """The workers' gRPC I/O engine: `iomgr` or `event-engine` (`grpc_engine.py`)."""
    schema_unary_methods: tuple[str, ...] = ()
    """Methods the `--proto-descriptor-set` files declare unary, none streaming
    (`descriptors.merge`): unary unless a backend's reflection says streaming."""
    schema_streaming_methods: tuple[str, ...] = ()
    """Methods those files declare streaming: never learned unary from reflection."""
    learn_unary_methods: bool = True
    """Ask a few backends per update for server reflection and serve the methods they declare
    unary with unary handlers (`worker/reflection.py`)."""
    metrics_method_label: bool = False
    """Add a `method` label to gproxy_calls_total (bounded to 200 values per worker)."""
    access_log: bool = False
    """One info line per call (route, method, backend, code, duration), from the workers."""
    balancer: str = "round-robin"
    """How a worker picks each call's backend (`worker/balancer.py`): `round-robin` or
    `least-request` (power of two choices by calls in flight)."""
    health_check: str | None = None
    """Ask each backend `grpc.health.v1.Health/Check` about this service ("": the server as a
    whole) and take NOT_SERVING ones out of the pick (`worker/health.py`); None: no checks."""
    health_check_interval: float = 5.0
    """Seconds between two checks of one backend by one worker."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds one connection attempt to a backend may take (TCP, TLS handshake, the server's
    HTTP/2 SETTINGS) before it fails as UNAVAILABLE and the call is retried elsewhere
    (`worker/channels.py`): long enough for a SYN retransmitted after 1 s and a TLS handshake
    on a busy node, shorter than most call deadlines. Envoy's default is 5 s, gRPC's 20 s."""
    tls_cert: str | None = None
    """`--tls-cert`: the listeners' certificate chain (PEM); with `tls_key`, they speak TLS."""
    tls_key: str | None = None
    tls_client_ca: str | None = None
    """`--tls-client-ca`: require client certificates signed by these CAs (mutual TLS)."""
    backend_tls: bool = False
    """`--backend-tls`: speak TLS to the backends (`worker/credentials.py`)."""
    backend_ca: str | None = None
    """CAs (PEM) backends are verified against; None: the system trust store."""
    backend_cert: str | None = None
    """A certificate chain (PEM) to present to backends (mutual TLS), with `backend_key`."""
    backend_key: str | None = None
    backend_tls_server_name: str | None = None
    """The name checked in backend certificates and sent as SNI; None: the route's default
    (`WorkerConfig.server_name`)."""
    data_plane: str = "native"
    """What forwards the calls in each worker (`worker/planes/`): `native` (the Rust engine in
    `gproxy_mp._native`, the default) or `grpcio` (grpc.aio, the reference)."""


DATA_PLANES = ("grpcio", "native")
"""`--data-plane` values."""
LOCALITY_MODES = ("auto", "node", "zone", "off")
"""`--locality` values (`supervisor/resolvers/locality.py`)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole command line, built once (`cli.build_settings`) and passed everywhere."""

    routes: tuple[Route, ...]
    workers: int = 1
    dns_refresh_interval: float = 5.0
    """Seconds between re-resolutions of `dns:` targets."""
    worker_timeout: float = 10.0
    """Seconds without a status report (sent every second) after which a worker counts as hung:
    it is SIGKILLed and replaced (gunicorn's timeout)."""
    kubeconfig: str | None = None
    """`--kubeconfig`: credentials outside a cluster; None: in-cluster, then the defaults."""
    admin: ListenAddress | None = None
    """Where the admin HTTP endpoints listen; None when disabled (`--admin-address off`)."""
    locality: str = "auto"
    """Which backends of `kubernetes:` targets are preferred: `auto` (as the Service asks),
    `node`, `zone` or `off` (`supervisor/resolvers/locality.py`)."""
    node_name: str | None = None
    """The node this proxy runs on (`--node-name`, GPROXY_NODE_NAME from the downward API)."""
    zone: str | None = None
    """This proxy's zone; None: the node's `topology.kubernetes.io/zone` label."""
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    proto_descriptor_set: tuple[DescriptorSet, ...] = ()
    """The `--proto-descriptor-set` files, decoded; their methods reach the workers as
    `WorkerOptions.schema_*_methods`."""

    @property
    def targets(self) -> tuple[Target, ...]:
        """Distinct targets, in first-use order: one resolver each."""
        return tuple(dict.fromkeys(r.target for r in self.routes))


# --- parsers ----------------------------------------------------------------------------------

SHOWN_LENGTH = 200
"""Characters of a bad value quoted in an error line; a longer one is cut and its length given."""


def shown(text: str) -> str:
    """`text` quoted for an error line, cut to `SHOWN_LENGTH` so the line stays one line."""
    if len(text) <= SHOWN_LENGTH:
        return repr(text)
    return f"{text[:SHOWN_LENGTH]!r}... ({len(text)} characters)"


MAX_DURATION = (2**31 - 1) / 1000
"""Seconds (596h31m23.647s): the longest duration every consumer accepts. gRPC keeps channel
and server durations (connection age and its grace) as int32 milliseconds and raises
OverflowError beyond; Python's thread and lock waits overflow far later. One bound for every
DURATION option, so no value passes validation and then fails in a worker."""
MAX_DURATION_TEXT = "596h31m23s"


def parse_duration(text: str, *, at_least: float = 0.0) -> float:
    """Go-style durations (`300ms`, `1m30s`, `0s`) or plain seconds (`2.5`) → float seconds,
    from `at_least` to `MAX_DURATION`."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = _parse_go_duration(value)
    else:
        if not math.isfinite(seconds):
            raise ConfigError(f"duration {text!r}: not a finite number")
    if seconds < 0:
        raise ConfigError(f"duration {text!r}: must not be negative")
    if seconds > MAX_DURATION:
        raise ConfigError(f"duration {text!r}: must be at most {MAX_DURATION_TEXT}")
    if seconds < at_least:
        shortest = f"{at_least * 1000:.0f}ms" if at_least < 1 else f"{at_least:g}s"
        raise ConfigError(f"duration {text!r}: must be at least {shortest}")
    return seconds


MIN_CONNECTION_AGE = 0.1
"""Seconds; gRPC keeps connection ages in milliseconds, and anything shorter would only churn."""


def parse_connection_age(text: str) -> float | None:
    """`--max-connection-age` / its grace: a duration, or `off` (also `0`) for none."""
    if text.strip().lower() in ("off", "none", "infinite"):
        return None
    seconds = parse_duration(text)
    if seconds == 0:
        return None
    if seconds < MIN_CONNECTION_AGE:
        raise ConfigError(f"duration {text!r}: must be off or at least "
                          f"{MIN_CONNECTION_AGE * 1000:.0f}ms")
    return seconds


def _parse_go_duration(value: str) -> float:
    if not value or _DURATION_PART.sub("", value):
        raise ConfigError(
            f"duration {value!r}: expected e.g. 300ms, 5s, 1m30s or plain seconds like 2.5"
        )
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(value))


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def usable_cpus(affinity: int, cpu_max: str | None) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota
    (`cpu.max`: "QUOTA PERIOD" or "max PERIOD"), as a container's CPU limit sets it."""
    cpus = affinity
    if cpu_max:
        quota, _, period = cpu_max.strip().partition(" ")
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    return max(1, cpus)


MAX_WORKERS_PER_CPU = 4
"""`--workers` may be at most this many times the CPUs the process may use. A worker is one
event loop on one core: past the CPU count more workers add no throughput, only memory (about
48 MB each) and context switches. A small multiple still allows deliberate oversubscription
(more SO_REUSEPORT listeners to spread few long-lived connections over, a CPU quota below what
the node gives the pod at quiet times); 999 on a 2-core machine is a typo that would start
workers until memory runs out."""


def read_usable_cpus() -> int:
    """The CPUs this process may use: its affinity and the container's cgroup v2 CPU quota."""
    try:
        with open(CGROUP_CPU_MAX) as f:
            cpu_max: str | None = f.read()
    except OSError:
        cpu_max = None
    return usable_cpus(len(os.sched_getaffinity(0)), cpu_max)


def parse_workers(text: str) -> int:
    """A positive worker count, at most `MAX_WORKERS_PER_CPU` times the usable CPUs, or
    `auto`: the CPUs this process may use (affinity, and a container's CPU limit where cgroup
    v2 sets one)."""
    if text.strip().lower() == "auto":
        return read_usable_cpus()
    try:
        count = int(text)
    except ValueError:
        raise ConfigError(f"--workers {text!r}: expected a positive integer or 'auto'") from None
    if count < 1:
        raise ConfigError(f"--workers {text!r}: must be at least 1")
    check_workers(count, cpus=read_usable_cpus())
    return count


def check_workers(count: int, *, cpus: int) -> None:
    """Refuse more than `MAX_WORKERS_PER_CPU` times `cpus` workers per route."""
    if count > MAX_WORKERS_PER_CPU * cpus:
        raise ConfigError(
            f"--workers '{count}': this process may use {cpus} CPU(s) (affinity and CPU quota); "
            f"at most {MAX_WORKERS_PER_CPU * cpus} workers per route "
            f"({MAX_WORKERS_PER_CPU} per CPU), 'auto' starts {cpus}")


def workers_warning(count: int, *, cpus: int) -> str | None:
    """A warning when `count` workers per route exceed the usable `cpus`, else None."""
    if count <= cpus:
        return None
    return (f"{count} workers per route, but this process may use {cpus} CPU(s): a worker "
            "uses at most one, so the extra ones add memory, not throughput")


MIN_DNS_REFRESH = 0.1
"""Seconds; a faster schedule would only load the DNS server."""


def parse_dns_refresh(text: str) -> float:
    return parse_duration(text, at_least=MIN_DNS_REFRESH)


MIN_HEALTH_CHECK_INTERVAL = 0.1
"""Seconds: checks more often than this would load backends more than the calls do."""


def parse_health_check_interval(text: str) -> float:
    return parse_duration(text, at_least=MIN_HEALTH_CHECK_INTERVAL)


MIN_CONNECT_TIMEOUT = 0.1
"""Seconds; gRPC keeps the connect timeout in milliseconds, and a TLS handshake on a loaded
machine takes tens of them."""


def parse_connect_timeout(text: str) -> float:
    return parse_duration(text, at_least=MIN_CONNECT_TIMEOUT)


MAX_STREAMS = 2**31 - 1
"""HTTP/2 SETTINGS values are 31-bit for MAX_CONCURRENT_STREAMS in gRPC's core (int32)."""


def parse_max_concurrent_streams(text: str) -> int:
    """A positive stream count per client connection."""
    try:
        count = int(text)
    except ValueError:
        raise ConfigError(f"{shown(text)}: expected a positive integer") from None
    if not 1 <= count <= MAX_STREAMS:
        raise ConfigError(f"{shown(text)}: must be from 1 to {MAX_STREAMS}")
    return count


MIN_WORKER_TIMEOUT = 2.0
"""Seconds; workers report every second, so a shorter timeout would kill healthy ones."""


def parse_worker_timeout(text: str) -> float:
    return parse_duration(text, at_least=MIN_WORKER_TIMEOUT)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_port(text: str, *, what: str) -> int:
    if not _is_number(text):
        raise ConfigError(f"{what}: port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{what}: port {port} is out of range 1-65535")
    return port


def split_host_port(text: str, *, what: str) -> tuple[str, str]:
    """`host:port` or `[v6]:port` → (host without brackets, port text)."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ConfigError(f"{what}: expected [ipv6]:port")
        host, port = text[1:close], text[close + 2 :]
        _check_ipv6(host, what=what)
        return host, port
    host, sep, port = text.rpartition(":")
    if not sep or not port:
        raise ConfigError(f"{what}: missing port (expected host:port)")
    if ":" in host:
        raise ConfigError(f"{what}: IPv6 addresses need brackets, as in [::1]:port")
    return host, port


def _check_ipv6(host: str, *, what: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ConfigError(f"{what}: {host!r} is not an IPv6 address") from None


def _check_host(host: str, *, what: str) -> None:
    if not host:
        raise ConfigError(f"{what}: missing host")
    if ":" in host:
        _check_ipv6(host, what=what)
    elif not _HOSTNAME.match(host):
        raise ConfigError(f"{what}: {host!r} is not a valid host name or address")


def parse_endpoint(text: str, *, what: str) -> Endpoint:
    host, port = split_host_port(text, what=what)
    _check_host(host, what=what)
    return Endpoint(host, parse_port(port, what=what))


def parse_listen(text: str) -> ListenAddress:
    what = f"listen address {text!r}"
    if text.startswith(":") and text.count(":") == 1:
        return ListenAddress("", parse_port(text[1:], what=what))
    endpoint = parse_endpoint(text, what=what)
    return ListenAddress(endpoint.host, endpoint.port)


_METHOD = re.compile(r"^/[A-Za-z0-9_.]+/([A-Za-z0-9_]+|\*)$")


def parse_unary_methods(text: str) -> tuple[str, ...]:
    """A comma-separated list of `/pkg.Service/Method` or `/pkg.Service/*`."""
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    for method in methods:
        if not _METHOD.match(method):
            raise ConfigError(f"method {method!r}: expected /package.Service/Method or "
                              "/package.Service/*")
    return methods


def parse_admin_address(text: str) -> ListenAddress | None:
    """`host:port`, `[v6]:port` or `:port`; `off` disables the admin endpoints."""
    if text.strip().lower() == "off":
        return None
    return parse_listen(text)


def parse_target(text: str) -> Target:
    what = f"target {shown(text)}"
    scheme, sep, rest = text.partition("://")
    if not sep:
        endpoint = parse_endpoint(text, what=what)
        return DnsTarget(endpoint.host, endpoint.port)
    if scheme not in SCHEMES:
        known = ", ".join(SCHEMES)
        raise ConfigError(f"{what}: unknown scheme {scheme!r} (expected one of {known})")
    authority, slash, path = rest.partition("/")
    if not slash:
        raise ConfigError(f"{what}: expected {scheme}://[authority]/...")
    if scheme == "static":
        return _parse_static(authority, path, what=what)
    if scheme == "dns":
        return _parse_dns(authority, path, what=what)
    return _parse_kubernetes(authority, path, what=what)


def _parse_static(authority: str, path: str, *, what: str) -> StaticTarget:
    if authority:
        raise ConfigError(f"{what}: static targets take no authority (static:///h1:p1,h2:p2)")
    parts = [p.strip() for p in path.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"{what}: no endpoints listed")
    return StaticTarget(build_endpoint_set(parse_endpoint(p, what=f"{what} endpoint {p!r}")
                                           for p in parts))


def _parse_dns(authority: str, path: str, *, what: str) -> DnsTarget:
    server = None
    if authority:
        if (authority.startswith("[") and not authority.endswith("]")) or (
            not authority.startswith("[") and authority.count(":") == 1
        ):
            server = parse_endpoint(authority, what=f"{what} DNS server")
        else:
            server = parse_endpoint(f"{authority}:{DEFAULT_DNS_PORT}", what=f"{what} DNS server")
    endpoint = parse_endpoint(path, what=what)
    return DnsTarget(endpoint.host, endpoint.port, server)


def _parse_kubernetes(authority: str, path: str, *, what: str) -> KubernetesTarget:
    name, port_text = split_host_port(path, what=what)
    if _is_number(port_text):
        port: int | str = parse_port(port_text, what=what)
    elif _PORT_NAME.match(port_text):
        port = port_text
    else:
        raise ConfigError(f"{what}: port {port_text!r} is neither a number nor a port name")
    labels = name.split(".")
    if authority:
        if len(labels) != 1:
            raise ConfigError(f"{what}: with a namespace authority, name only the service")
        service, namespace = name, authority
    elif len(labels) == 1:
        service, namespace = name, None
    elif len(labels) == 2 or (len(labels) >= 3 and labels[2] == "svc"):
        service, namespace = labels[0], labels[1]
    else:
        raise ConfigError(f"{what}: expected svc, svc.ns or svc.ns.svc.<cluster-domain>")
    if not _DNS1035_LABEL.match(service):
        raise ConfigError(f"{what}: {service!r} is not a valid Service name")
    if namespace is not None and not _DNS1123_LABEL.match(namespace):
        raise ConfigError(f"{what}: {namespace!r} is not a valid namespace")
    return KubernetesTarget(service, port, namespace)


MAX_LISTEN_LENGTH = 253 + len(":65535")
"""Characters: the longest LISTEN (a full-length DNS name and a port); `[v6]:port` is shorter."""


def parse_route(text: str, *, index: int) -> Route:
    """A `-p` value. Split at the first "-" whose left side is a LISTEN and right side a TARGET.

    If no split works, the error comes from the most plausible split, so the message names the
    part that is wrong (an out-of-range listen port, an unknown scheme, a missing target port).
    """
    # A LISTEN is at most a 253-character host name, ":" and a port, so only the dashes within
    # reach can split: trying each dash of a long value would be quadratic in its length.
    dashes = [i for i, c in enumerate(text[: MAX_LISTEN_LENGTH + 1]) if c == "-"]
    first_error: ConfigError | None = None
    listen_errors: list[ConfigError] = []
    for i in dashes:
        left, right = text[:i], text[i + 1 :]
        try:
            listen = parse_listen(left)
        except ConfigError as e:
            listen_errors.append(e)
            continue
        try:
            target = parse_target(right)
        except ConfigError as e:
            first_error = first_error or e
            continue
        return Route(index, listen, target, spec=text)
    if first_error is not None:
        raise ConfigError(f"--proxy {shown(text)}: {first_error}")
    for i in dashes:  # no valid LISTEN: blame it, if some right side is a valid target
        try:
            parse_target(text[i + 1 :])
        except ConfigError:
            continue
        raise ConfigError(f"--proxy {shown(text)}: {listen_errors[dashes.index(i)]}")
    raise ConfigError(
        f"--proxy {shown(text)}: expected LISTEN-TARGET, "
        "e.g. 127.0.0.1:5000-static:///10.0.0.1:50051,10.0.0.2:50051"
    )


def _overlap(a: ListenAddress, b: ListenAddress) -> bool:
    """Whether two listen addresses would take the same port (all interfaces overlap all)."""
    return a.port == b.port and (not a.host or not b.host or a.host == b.host)


def check_routes(routes: tuple[Route, ...]) -> None:
    """Two routes may not share a listen port on overlapping addresses."""
    for index, route in enumerate(routes):
        for other in routes[:index]:
            if _overlap(route.listen, other.listen):
                raise ConfigError(f"--proxy {shown(route.spec)}: listen address {route.listen} "
                                  f"is already used by another --proxy ({other.listen})")


def check_admin(admin: ListenAddress | None, routes: tuple[Route, ...]) -> None:
    """The admin endpoints may not take a route's listen port."""
    for route in routes:
        if admin is not None and _overlap(admin, route.listen):
            raise ConfigError(f"--admin-address {admin}: already the listen address of "
                              f"--proxy {shown(route.spec)}")
