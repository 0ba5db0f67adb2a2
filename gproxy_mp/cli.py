"""The `gproxy-mp` command: flags → `Settings` → `run_supervisor`; user-facing errors only.

Flags keep the seed tool's names (`-p/--proxy`, `-d/--shutdown-delay`, `--version`, `-h`);
every flag also reads `GPROXY_<NAME>` from the environment. Values are parsed by `config`, so
every bad input ends as one line `error: ...` naming the value, exit 2, and never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import click

from gproxy_mp import __version__
from gproxy_mp.config import (
    Settings,
    check_routes,
    parse_admin_address,
    parse_connection_age,
    parse_duration,
    parse_route,
    parse_unary_methods,
    parse_workers,
)
from gproxy_mp.errors import ConfigError, ExitCode, GproxyError
from gproxy_mp.grpc_engine import GRPC_ENGINES, check_grpc_engine
from gproxy_mp.logs import FORMATS, LEVELS, configure_logging
from gproxy_mp.loops import EVENT_LOOPS, check_event_loop

log = logging.getLogger("gproxy_mp")
T = TypeVar("T")

MIN_DNS_REFRESH = 0.1
"""Seconds; a faster schedule would only load the DNS server."""
EXAMPLE = "-p 127.0.0.1:5000-static:///10.0.0.1:50051,10.0.0.2:50051"


def _parse(flag: str, parser: Callable[[str], T], text: str) -> T:
    try:
        return parser(text)
    except ConfigError as e:
        raise ConfigError(f"{flag}: {e}") from None


def build_settings(*, proxy: Sequence[str], shutdown_delay: str, workers: str,
                   drain_timeout: str, dns_refresh_rate: str, admin_address: str,
                   log_format: str, log_level: str, kubeconfig: str | None = None,
                   access_log: bool = False, metrics_method_label: bool = False,
                   unary_methods: str = "", max_connection_age: str = "off",
                   max_connection_age_grace: str = "off",
                   learn_unary_methods: bool = True, event_loop: str = "auto",
                   grpc_engine: str = "iomgr") -> Settings:
    if not proxy:
        raise ConfigError(f"missing option -p/--proxy LISTEN-TARGET (e.g. {EXAMPLE})")
    routes = tuple(parse_route(text, index=i) for i, text in enumerate(proxy))
    check_routes(routes)
    return Settings(
        routes=routes,
        workers=parse_workers(workers),
        shutdown_delay=_parse("--shutdown-delay", parse_duration, shutdown_delay),
        drain_timeout=_parse("--drain-timeout", parse_duration, drain_timeout),
        dns_refresh_interval=_parse("--dns-refresh-rate", _parse_refresh, dns_refresh_rate),
        max_connection_age=_parse("--max-connection-age", parse_connection_age,
                                  max_connection_age),
        max_connection_age_grace=_parse("--max-connection-age-grace", parse_connection_age,
                                        max_connection_age_grace),
        kubeconfig=kubeconfig or None,
        admin=_parse("--admin-address", parse_admin_address, admin_address),
        log_format=log_format,
        log_level=log_level,
        access_log=access_log,
        metrics_method_label=metrics_method_label,
        unary_methods=_parse("--unary-methods", parse_unary_methods, unary_methods),
        learn_unary_methods=learn_unary_methods,
        event_loop=_parse("--event-loop", check_event_loop, event_loop),
        grpc_engine=_parse("--grpc-engine", check_grpc_engine, grpc_engine),
    )


def _parse_refresh(text: str) -> float:
    seconds = parse_duration(text)
    if seconds < MIN_DNS_REFRESH:
        raise ConfigError(f"duration {text!r}: must be at least {MIN_DNS_REFRESH * 1000:.0f}ms")
    return seconds


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "GPROXY",
                      "max_content_width": 100},
    epilog=f"""\b
LISTEN-TARGET is LISTEN and TARGET joined by '-' (split at the first '-' before a target):
  LISTEN  host:port | [v6addr]:port | :port (all interfaces)
  TARGET  kubernetes:///svc[.ns]:port|portname   kubernetes://ns/svc:port
          dns:///host:port   dns://server[:port]/host:port   host:port (= dns:///host:port)
          static:///h1:p1,h2:p2,[v6]:p3
DURATION is Go style (300ms, 5s, 1m30s) or plain seconds (2.5).
Every option also reads GPROXY_<NAME> from the environment, e.g. GPROXY_WORKERS=4.

\b
Example:
  gproxy-mp {EXAMPLE} --workers 4""",
)
@click.option("-p", "--proxy", "proxy", multiple=True, metavar="LISTEN-TARGET",
              help="A route: listen address and target. Repeatable; at least one.")
@click.option("-d", "--shutdown-delay", default="5s", show_default=True, metavar="DURATION",
              help="After SIGTERM/SIGINT keep serving this long, then drain.")
@click.option("-w", "--workers", default="1", show_default=True, metavar="N|auto",
              help="Worker processes per route; 'auto' = usable CPUs.")
@click.option("--drain-timeout", default="25s", show_default=True, metavar="DURATION",
              help="After the delay, how long in-flight calls may finish before cancellation.")
@click.option("--dns-refresh-rate", default="5s", show_default=True, metavar="DURATION",
              help="How often dns: targets are re-resolved (jittered by 10%).")
@click.option("--max-connection-age", default="off", show_default=True, metavar="DURATION|off",
              help="Send each client connection a GOAWAY after about this long (+-10%), so "
              "busy long-lived connections reconnect and re-spread over the workers.")
@click.option("--max-connection-age-grace", default="off", show_default=True,
              metavar="DURATION|off", help="After that GOAWAY, how long calls may still run on "
              "the old connection before it is closed; 'off': until they finish.")
@click.option("--admin-address", default="127.0.0.1:9901", show_default=True,
              metavar="HOST:PORT|off", help="/healthz, /readyz, /debug/endpoints; 'off' disables.")
@click.option("--kubeconfig", default=None, metavar="PATH",
              help="Credentials for running outside a cluster. Default: the pod's service "
              "account, then $KUBECONFIG, then ~/.kube/config.")
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default="info",
              show_default=True)
@click.option("--check", "check", is_flag=True, default=False,
              help="Validate the options, resolve every target once, check Kubernetes "
              "permissions, print a table and exit (0: all good).")
@click.option("--unary-methods", default="", metavar="/pkg.Svc/Method,...",
              help="Methods known to be unary (or /pkg.Svc/* for a whole service): served "
              "with cheaper unary handlers. A streaming call to one of them fails.")
@click.option("--learn-unary-methods/--no-learn-unary-methods", default=True, show_default=True,
              help="Ask backends for gRPC server reflection and serve the methods they all "
              "declare unary with cheaper unary handlers.")
@click.option("--event-loop", type=click.Choice(EVENT_LOOPS), default="auto",
              show_default=True,
              help="The workers' event loop; 'auto': uvloop when installed (about 7% less CPU "
              "per call), else asyncio's own.")
@click.option("--grpc-engine", type=click.Choice(GRPC_ENGINES), default="iomgr",
              show_default=True,
              help="The workers' gRPC I/O engine: 'iomgr' polls sockets on the thread that "
              "completes calls (about 14% less CPU per call than 'event-engine', gRPC's "
              "newer default). Set through GRPC_EXPERIMENTS; one of your own is kept.")
@click.option("--metrics-method-label", is_flag=True, default=False,
              help="Label call counters with the gRPC method too (at most 200 per worker).")
@click.option("--access-log", is_flag=True, default=False,
              help="Log one line per call: route, method, backend, code, duration.")
@click.version_option(__version__, "--version", prog_name="gproxy-mp",
                      message="%(prog)s %(version)s")
def command(  # noqa: PLR0917 (click passes options positionally)
    proxy: tuple[str, ...], shutdown_delay: str, workers: str, drain_timeout: str,
    dns_refresh_rate: str, admin_address: str, kubeconfig: str | None, log_format: str,
    log_level: str, access_log: bool, check: bool, metrics_method_label: bool,
    unary_methods: str, max_connection_age: str, max_connection_age_grace: str,
    learn_unary_methods: bool, event_loop: str, grpc_engine: str,
) -> None:
    """gproxy-mp: a node-level gRPC load balancer that round-robins every call (not every
    connection) over Kubernetes, DNS or static backends, in worker processes sharing the port."""
    settings = build_settings(proxy=proxy, shutdown_delay=shutdown_delay, workers=workers,
                              drain_timeout=drain_timeout, dns_refresh_rate=dns_refresh_rate,
                              admin_address=admin_address, kubeconfig=kubeconfig,
                              access_log=access_log,
                              metrics_method_label=metrics_method_label,
                              unary_methods=unary_methods,
                              max_connection_age=max_connection_age,
                              max_connection_age_grace=max_connection_age_grace,
                              learn_unary_methods=learn_unary_methods,
                              event_loop=event_loop,
                              grpc_engine=grpc_engine,
                              log_format=log_format,
                              log_level=log_level.lower())
    configure_logging(role="supervisor", fmt=settings.log_format, level=settings.log_level)
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
    except click.UsageError as e:
        _fail(e.format_message().rstrip("."), ExitCode.USAGE)
    except click.Abort:
        _fail("aborted", ExitCode.RUNTIME)
    except GproxyError as e:
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.RUNTIME)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
