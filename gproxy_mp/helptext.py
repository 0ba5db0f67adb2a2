"""What `gproxy-mp --help` says: options grouped into sections, exit codes and signals.

Click has no option groups, so the sections are one table here (`SECTIONS`, long flag →
section) and `SectionedCommand` formats the options by it; the decorators in `cli` stay as
they are. An option the table does not name still shows, under `CATCH_ALL`, and
`tests/unit/test_help_sections.py` fails naming it, so a new option gets its section when it
is added. `describe` is the one reading of an option (flag, section, default, variable, help)
that both `--help` and the generated reference page (`harness/clidoc.py`) print, so the two
cannot disagree. Defaults are shown in one notation, `[default: X; env: GPROXY_X]`: a click
default as written, `on`/`off` for a flag, or an option's `show_default` text where the
default is not a value (`--kubeconfig`). No figures here: measurements go stale, and belong
to the README's benchmark section.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import click

from gproxy_mp.errors import ExitCode
from gproxy_mp.params import envvar_of

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Routes", ("--proxy",)),
    ("Workers and shutdown", ("--workers", "--shutdown-delay", "--drain-timeout",
                              "--worker-timeout")),
    ("Discovery", ("--dns-refresh-rate", "--kubeconfig", "--locality", "--node-name", "--zone")),
    ("Balancing and health", ("--balancer", "--health-check", "--health-check-interval",
                              "--connect-timeout")),
    ("TLS", ("--tls-cert", "--tls-key", "--tls-client-ca", "--backend-tls", "--backend-ca",
             "--backend-tls-server-name", "--backend-cert", "--backend-key")),
    ("Tuning", ("--max-connection-age", "--max-connection-age-grace",
                "--max-concurrent-streams", "--unary-methods", "--proto-descriptor-set",
                "--learn-unary-methods", "--event-loop", "--grpc-engine", "--data-plane")),
    ("Observability", ("--admin-address", "--log-format", "--log-level",
                       "--metrics-method-label", "--access-log")),
    ("General", ("--check", "--version", "--help")),
)
"""Sections in the order `--help` prints them; each option by its first long flag, in the
order printed within its section."""
CATCH_ALL = "Other options"
"""Where an option missing from `SECTIONS` is printed, so it never vanishes from `--help`."""

EXAMPLE = "-p 127.0.0.1:5000-static:///10.0.0.1:50051,10.0.0.2:50051"

VALUES = """\
LISTEN-TARGET is LISTEN and TARGET joined by '-' (split at the first '-' before a target):
  LISTEN  host:port | [v6addr]:port | :port (all interfaces)
  TARGET  kubernetes:///svc[.ns]:port|portname   kubernetes://ns/svc:port
          dns:///host:port   dns://server[:port]/host:port   host:port (= dns:///host:port)
          static:///h1:p1,h2:p2,[v6]:p3
DURATION is Go style (300ms, 5s, 1m30s) or plain seconds (2.5).
Every option also reads its GPROXY_<NAME> variable; a flag on the command line wins.
Several routes in GPROXY_PROXY are separated by spaces."""
"""The value grammars the options' metavars name."""

EXIT_CODES: tuple[tuple[ExitCode, str], ...] = (
    (ExitCode.OK, "stopped after SIGTERM/SIGINT; --check: every check passed"),
    (ExitCode.RUNTIME, "a listen address in use, workers that cannot start, a supervisor "
                       "part that failed; --check: a check failed"),
    (ExitCode.USAGE, "bad option, value or GPROXY_* variable (one 'error:' line)"),
)
"""The supervisor's exit codes. `ExitCode.WORKER_BOOT` is a worker's own code towards the
supervisor, which then exits 1."""

SIGNALS: tuple[tuple[str, str], ...] = (
    ("SIGTERM, SIGINT", "/readyz turns 503; keep serving for --shutdown-delay, then stop "
                        "accepting (GOAWAY) and let calls finish for up to --drain-timeout; "
                        "exit 0"),
    ("second SIGTERM/SIGINT", "stop now: cancel what is in flight"),
    ("SIGKILL", "the workers exit within seconds on their own: none is left holding the "
                "port"),
)
"""What the supervisor does on each signal (README: Shutdown)."""


EPILOG_WIDTH = 88
"""Columns of the epilog's own tables, which click does not wrap (`\\b`)."""


def table_text(rows: tuple[tuple[str, str], ...]) -> str:
    """Two columns, the second wrapped under itself."""
    width = max(len(name) for name, _ in rows)
    indent = " " * (width + 4)
    return "\n".join(textwrap.fill(meaning, EPILOG_WIDTH, initial_indent=f"  {name:<{width}}  ",
                                   subsequent_indent=indent, break_on_hyphens=False)
                     for name, meaning in rows)


def build_epilog() -> str:
    """The text after the options: value grammars, exit codes, signals, an example. `\\b`
    keeps click from rewrapping each paragraph."""
    codes = table_text(tuple((str(int(code)), meaning) for code, meaning in EXIT_CODES))
    return (f"\b\n{VALUES}\n\n\b\nExit codes:\n{codes}\n\n"
            f"\b\nSignals:\n{table_text(SIGNALS)}\n\n"
            f"\b\nExample:\n  gproxy-mp {EXAMPLE} --workers 4")


@dataclass(frozen=True, slots=True)
class OptionDoc:
    """One option as `--help` and docs/cli.md show it."""

    flag: str
    """The first long flag: the key of `SECTIONS`."""
    spec: str
    """Flags and metavar, as click prints them (`-w, --workers N|auto`)."""
    section: str
    help: str
    default: str | None
    envvar: str | None

    @property
    def extra(self) -> str:
        """`[default: X; env: GPROXY_X]`, or "" when there is neither."""
        items = [f"default: {self.default}"] if self.default is not None else []
        items += [f"env: {self.envvar}"] if self.envvar is not None else []
        return f"[{'; '.join(items)}]" if items else ""


def long_flag(param: click.Parameter) -> str:
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])


def section_of(flag: str) -> str:
    return next((title for title, flags in SECTIONS if flag in flags), CATCH_ALL)


def default_of(param: click.Option, ctx: click.Context) -> str | None:
    """The default in the one notation `--help` uses; None: nothing worth showing."""
    if isinstance(param.show_default, str):
        return param.show_default
    if param.show_default is False or not param.expose_value:
        return None
    default = param.get_default(ctx, call=False)
    if param.is_flag and param.is_bool_flag:
        return "on" if default else "off"
    if isinstance(default, str | int | float) and default != "":
        return str(default)
    return None  # none, empty, or computed


def describe(command: click.Command, ctx: click.Context) -> tuple[OptionDoc, ...]:
    """Every visible option of `command`, in `SECTIONS` order, unknown ones last."""
    docs = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if not isinstance(param, click.Option) or record is None:
            continue
        flag = long_flag(param)
        docs.append(OptionDoc(flag=flag, spec=record[0], section=section_of(flag),
                              help=" ".join((param.help or "").split()),
                              default=default_of(param, ctx),
                              envvar=envvar_of(param, ctx) if param.expose_value else None))
    order = [flag for _, flags in SECTIONS for flag in flags]
    return tuple(sorted(docs, key=lambda d: order.index(d.flag) if d.flag in order
                        else len(order)))


def grouped(docs: tuple[OptionDoc, ...]) -> list[tuple[str, list[OptionDoc]]]:
    """`docs` by section, in `SECTIONS` order, then `CATCH_ALL`; empty sections left out."""
    titles = [title for title, _ in SECTIONS] + [CATCH_ALL]
    return [(title, [d for d in docs if d.section == title]) for title in titles
            if any(d.section == title for d in docs)]


class SectionedCommand(click.Command):
    """A click command whose `--help` lists its options by `SECTIONS`."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, docs in grouped(describe(self, ctx)):
            with formatter.section(title):
                formatter.write_dl([(d.spec, f"{d.help}  {d.extra}".strip()) for d in docs])
