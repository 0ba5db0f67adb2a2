"""The `gproxy-mp` command: flags → `Settings` → `run_supervisor`; user-facing errors only.

Flags keep the seed tool's names (`-p/--proxy`, `-d/--shutdown-delay`, `--version`, `-h`);
every flag also reads `GPROXY_<NAME>` from the environment. `--help` groups them by
`helptext.SECTIONS`; a new option gets its section there. Values are parsed by `config`, so
every bad input ends as one line `error: ...` naming the value, exit 2, and never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import click

from gproxy_mp import __version__, params
from gproxy_mp.config import (
    DATA_PLANES,
    LOCALITY_MODES,
    Route,
    Settings,
    WorkerOptions,
    check_admin,
    check_routes,
    read_usable_cpus,
    workers_warning,
)
from gproxy_mp.dataplane import check_data_plane
from gproxy_mp.descriptors import merge
from gproxy_mp.errors import ConfigError, ExitCode, GproxyError
from gproxy_mp.grpc_engine import GRPC_ENGINES
from gproxy_mp.helptext import EXAMPLE, SectionedCommand, build_epilog
from gproxy_mp.logs import FORMATS, LEVELS, configure_logging
from gproxy_mp.tls import backend_tls, listener_tls
from gproxy_mp.tls_material import check_tls
from gproxy_mp.worker.balancer import BALANCERS

log = logging.getLogger("gproxy_mp")

RENAMED = {"proxy": "routes", "dns_refresh_rate": "dns_refresh_interval",
           "admin_address": "admin"}
"""Click parameters (named after their flags and `GPROXY_*` variables) whose `Settings` field
has another name."""
WORKER_FIELDS = frozenset(WorkerOptions.__dataclass_fields__)


def build_settings(**values: Any) -> Settings:
    """`Settings` from click's parsed parameter values (`command`'s keyword arguments), after
    the checks that span several options."""
    fields = {RENAMED.get(name, name): value for name, value in values.items()}
    routes: tuple[Route, ...] = tuple(
        replace(route, index=index) for index, route in enumerate(fields.pop("routes", ())))
    if not routes:
        raise ConfigError(f"missing option -p/--proxy LISTEN-TARGET (e.g. {EXAMPLE})")
    check_routes(routes)
    check_admin(fields.get("admin"), routes)
    sets = tuple(one for group in fields.pop("proto_descriptor_set", ()) for one in group)
    unary, streaming = merge(sets)
    fields.update(proto_descriptor_set=sets, schema_unary_methods=tuple(sorted(unary)),
                  schema_streaming_methods=tuple(sorted(streaming)))
    worker = WorkerOptions(**{k: fields.pop(k) for k in WORKER_FIELDS & fields.keys()})
    native = worker.data_plane == "native"
    check_tls(listener_tls(worker), native=native)
    check_tls(backend_tls(worker), native=native)
    check_data_plane(worker)
    for optional in ("kubeconfig", "node_name", "zone"):
        fields[optional] = fields.get(optional) or None
    return Settings(routes=routes, worker=worker, **fields)


@click.command(
    cls=SectionedCommand,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "GPROXY",
                      "max_content_width": 100},
    epilog=build_epilog(),
)
@click.option("-p", "--proxy", "proxy", multiple=True, type=params.ROUTE, metavar="LISTEN-TARGET",
              help="A route: listen address and target. Repeatable; at least one.")
@click.option("-d", "--shutdown-delay", default="5s", show_default=True, type=params.DURATION,
              help="After SIGTERM/SIGINT keep serving this long, then drain.")
@click.option("-w", "--workers", default="1", show_default=True, type=params.WORKERS,
              help="Worker processes per route; 'auto' = usable CPUs.")
@click.option("--drain-timeout", default="25s", show_default=True, type=params.DURATION,
              help="After the delay, how long in-flight calls may finish before cancellation.")
@click.option("--dns-refresh-rate", default="5s", show_default=True, type=params.DNS_REFRESH,
              help="How often dns: targets are re-resolved (jittered).")
@click.option("--max-connection-age", default="off", show_default=True,
              type=params.CONNECTION_AGE,
              help="Send each client connection a GOAWAY after about this long (jittered), so "
              "busy long-lived connections reconnect and re-spread over the workers.")
@click.option("--max-connection-age-grace", default="off", show_default=True,
              type=params.CONNECTION_AGE, help="After that GOAWAY, how long calls may still run on "
              "the old connection before it is closed; 'off': until they finish.")
@click.option("--max-concurrent-streams", default="1000", show_default=True, type=params.STREAMS,
              help="Calls one client connection may have open at once (HTTP/2 SETTINGS); "
              "the client queues the rest. Bounds a worker's memory per connection.")
@click.option("--worker-timeout", default="10s", show_default=True, type=params.WORKER_TIMEOUT,
              help="A worker silent this long (no status report; it sends one every second) "
              "is killed and replaced.")
@click.option("--admin-address", default="127.0.0.1:9901", show_default=True,
              type=params.ADMIN_ADDRESS,
              help="Admin HTTP: /healthz, /readyz, /metrics (Prometheus), /debug/endpoints; 'off' "
              "disables.")
@click.option("--kubeconfig", default=None, metavar="PATH",
              show_default="the pod's service account, then $KUBECONFIG, then ~/.kube/config",
              help="Credentials for running outside a cluster.")
@click.option("--locality", type=click.Choice(LOCALITY_MODES), default="auto", show_default=True,
              help="Which backends of kubernetes: targets calls prefer: 'auto' as the Service's "
              "trafficDistribution (or zone hints) asks, 'node' (same node, then zone), 'zone', "
              "or 'off'. Calls spill over when no preferred backend is ready.")
@click.option("--node-name", default=None, metavar="NAME",
              help="The node this proxy runs on, for --locality (in a pod: from spec.nodeName "
              "through the downward API).")
@click.option("--zone", default=None, metavar="ZONE",
              show_default="the Node's topology.kubernetes.io/zone label (needs get on nodes)",
              help="This proxy's zone, for --locality.")
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Human lines, or one JSON object per line for log pipelines.")
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default="info",
              show_default=True, help="The least severe level logged.")
@click.option("--check", "check", is_flag=True, default=False,
              help="Validate the options, resolve every target once, check Kubernetes "
              "permissions, print a table and exit (see Exit codes).")
@click.option("--balancer", type=click.Choice(BALANCERS), default="round-robin",
              show_default=True,
              help="How each call's backend is picked: 'round-robin' in turn, or "
              "'least-request': the one of two random backends with fewer calls in flight "
              "(slow backends get fewer calls).")
@click.option("--tls-cert", default=None, metavar="FILE",
              help="Serve TLS on every listener with this certificate chain (PEM); needs "
              "--tls-key. Re-read when the file changes.")
@click.option("--tls-key", default=None, metavar="FILE",
              help="The private key (PEM) of --tls-cert.")
@click.option("--tls-client-ca", default=None, metavar="FILE",
              help="Require client certificates signed by these CAs (PEM): mutual TLS.")
@click.option("--backend-tls", is_flag=True, default=False,
              help="Speak TLS to the backends, verifying them against the system trust store "
              "or --backend-ca.")
@click.option("--backend-ca", default=None, metavar="FILE",
              show_default="the system trust store",
              help="With --backend-tls: trust these CAs (PEM) for backends.")
@click.option("--backend-tls-server-name", default=None, metavar="NAME",
              show_default="svc.ns.svc (kubernetes:), the queried name (dns:), the host "
              "(static:)",
              help="With --backend-tls: the name checked in backend certificates and sent as "
              "SNI.")
@click.option("--backend-cert", default=None, metavar="FILE",
              help="With --backend-tls: present this certificate chain (PEM) to backends "
              "(mutual TLS); needs --backend-key. Re-read when the files change.")
@click.option("--backend-key", default=None, metavar="FILE",
              help="The private key (PEM) of --backend-cert.")
@click.option("--health-check", is_flag=False, flag_value="", default=None, metavar="[SERVICE]",
              help="Ask each backend grpc.health.v1.Health/Check (about SERVICE, or the whole "
              "server) and send no calls to those not SERVING; backends without the health "
              "service count as serving.", show_default="off")
@click.option("--health-check-interval", default="5s", show_default=True,
              type=params.HEALTH_CHECK_INTERVAL,
              help="How often each worker checks each backend with --health-check.")
@click.option("--connect-timeout", default="2s", show_default=True, type=params.CONNECT_TIMEOUT,
              help="How long one connection attempt to a backend may take (TCP, TLS, HTTP/2 "
              "SETTINGS); then it fails as UNAVAILABLE and the call is retried elsewhere.")
@click.option("--unary-methods", default="", type=params.UNARY_METHODS,
              help="grpcio plane only. Methods known to be unary (or /pkg.Svc/* for a whole "
              "service): served with cheaper unary handlers. A streaming call to one of them "
              "fails.")
@click.option("--proto-descriptor-set", multiple=True, type=params.DESCRIPTOR_SETS,
              help="grpcio plane only. FileDescriptorSets (protoc --descriptor_set_out, buf "
              "build -o): the methods they declare unary (and no source declares streaming) "
              "are served with cheaper unary handlers. Repeatable.")
@click.option("--learn-unary-methods/--no-learn-unary-methods", default=True, show_default=True,
              help="grpcio plane only (the native plane does nothing of it). Ask backends for "
              "gRPC server reflection and serve the methods they all declare unary with "
              "cheaper unary handlers.")
@click.option("--event-loop", type=params.EVENT_LOOP, default="auto",
              show_default=True,
              help="grpcio plane only. The workers' event loop; 'auto': uvloop when installed "
              "(cheaper per call), else asyncio's own.")
@click.option("--grpc-engine", type=click.Choice(GRPC_ENGINES), default="iomgr",
              show_default=True,
              help="grpcio plane only. The workers' gRPC I/O engine: 'iomgr' polls sockets on "
              "the thread that completes calls (cheaper per call than 'event-engine', which "
              "gRPC otherwise uses). Set through GRPC_EXPERIMENTS; one of your own is kept.")
@click.option("--data-plane", type=click.Choice(DATA_PLANES), default="native", show_default=True,
              help="What forwards the calls in each worker: 'native' (a Rust HTTP/2 engine) or "
              "'grpcio' (grpc.aio: the reference implementation, many times the CPU per call; "
              "the options marked 'grpcio plane only' need it).")
@click.option("--metrics-method-label", is_flag=True, default=False,
              help="Label call counters with the gRPC method too (at most 200 per worker).")
@click.option("--access-log", is_flag=True, default=False,
              help="Log one line per call: route, method, backend, code, duration.")
@click.version_option(__version__, "--version", prog_name="gproxy-mp",
                      message="%(prog)s %(version)s", allow_from_autoenv=False)
def command(check: bool, **values: Any) -> None:
    """gproxy-mp: a node-level gRPC load balancer that balances every call (not every
    connection) over Kubernetes, DNS or static backends, in worker processes sharing the port."""
    try:
        settings = build_settings(**values)
    except ConfigError as e:
        raise ConfigError(params.name_the_source(str(e), click.get_current_context())) from None
    configure_logging(role="supervisor", fmt=settings.worker.log_format,
                      level=settings.worker.log_level)
    if (warning := workers_warning(settings.workers, cpus=read_usable_cpus())) is not None:
        log.warning("%s", warning)
    from gproxy_mp.supervisor.main import main_async  # noqa: PLC0415 (keeps --help fast)
    from gproxy_mp.supervisor.resolvers import check_resolvable  # noqa: PLC0415

    check_resolvable(settings)
    if check:
        from gproxy_mp.supervisor.check import (  # noqa: PLC0415
            check_exit_code,
            render_check,
            run_check,
        )

        rows = asyncio.run(run_check(settings))
        click.echo(render_check(rows))
        sys.exit(check_exit_code(rows))
    sys.exit(asyncio.run(main_async(settings)))


def main(argv: Sequence[str] | None = None) -> None:
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="gproxy-mp",
                     standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.BadParameter as e:
        _fail(_name_the_source(e).format_message().rstrip("."), ExitCode.USAGE)
    except click.UsageError as e:
        _fail(e.format_message().rstrip("."), ExitCode.USAGE)
    except click.Abort:
        _fail("aborted", ExitCode.RUNTIME)
    except GproxyError as e:
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.RUNTIME)


def _name_the_source(error: click.BadParameter) -> click.BadParameter:
    """Click's own bad-value errors (a choice, a boolean) name the variable, not the flag, when
    the value came from the environment; `params.Parsed` does the same for ours."""
    if error.param is not None and error.param_hint is None:
        source = params.source_of(error.param, error.ctx)
        if source not in error.param.opts:
            error.param_hint = [source]
    return error


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
