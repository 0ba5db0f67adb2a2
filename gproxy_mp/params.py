"""Click parameter types: one per value grammar of the command line, each over a `config` parser.

A value is parsed once, by click, from the flag or its `GPROXY_<NAME>` variable, into the
typed value that `Settings` holds. A bad value raises `ConfigError` prefixed with where it came
from: the flag (`--shutdown-delay: duration 'abc': ...`) or the variable
(`GPROXY_SHUTDOWN_DELAY: duration 'abc': ...`), so `cli` prints the one line `error: ...` and
exits 2, as for every other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import click
from click.core import ParameterSource

from gproxy_mp.config import (
    parse_admin_address,
    parse_connect_timeout,
    parse_connection_age,
    parse_dns_refresh,
    parse_duration,
    parse_health_check_interval,
    parse_max_concurrent_streams,
    parse_route,
    parse_unary_methods,
    parse_worker_timeout,
    parse_workers,
)
from gproxy_mp.descriptors import parse_descriptor_sets
from gproxy_mp.errors import ConfigError
from gproxy_mp.loops import EVENT_LOOPS, check_event_loop

T = TypeVar("T")


def envvar_of(param: click.Parameter, ctx: click.Context) -> str | None:
    """The environment variable `param` reads: its own, else `GPROXY_<NAME>` (click's
    `auto_envvar_prefix`); None for a parameter that reads none (`--version`)."""
    if isinstance(param.envvar, str):
        return param.envvar
    if (isinstance(param, click.Option) and param.allow_from_autoenv and param.name
            and ctx.auto_envvar_prefix is not None):
        return f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
    return None


def source_of(param: click.Parameter, ctx: click.Context | None) -> str:
    """What an error line calls the place `param`'s value came from: its variable when the
    value was read from the environment, else its flag (the last, long one)."""
    if ctx is not None and param.name is not None:
        envvar = envvar_of(param, ctx)
        if envvar and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
            return envvar
    return param.opts[-1] if param.opts else (param.name or "")


def name_the_source(message: str, ctx: click.Context) -> str:
    """`message`, an error of a check that spans options (run after parsing, so it names the
    flag: `--admin-address 127.0.0.1:5000: already the listen address of ...`), with that flag
    replaced by its variable when the option's value came from the environment."""
    for param in ctx.command.params:
        flag = param.opts[-1] if param.opts else ""
        if flag and message.startswith((f"{flag} ", f"{flag}:")):
            return source_of(param, ctx) + message[len(flag):]
    return message


class Parsed(click.ParamType, Generic[T]):  # type: ignore[type-arg]  # generic in click 8.2+ only
    """A value read by one of `config`'s parsers."""

    def __init__(self, name: str, parse: Callable[[str], T]) -> None:
        self.name = name
        self._parse = parse

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.name

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> T:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]  # already parsed (a default object)
        try:
            return self._parse(value)
        except ConfigError as e:
            if param is None:
                raise
            flag = param.opts[-1] if param.opts else ""
            source = source_of(param, ctx)
            message = str(e)
            if flag and message.startswith(flag):  # the parser named the flag itself
                message = message[len(flag):].lstrip(":").lstrip()
            raise ConfigError(f"{source} {message}" if message.startswith(("'", '"'))
                              else f"{source}: {message}") from None


DURATION = Parsed("DURATION", parse_duration)
CONNECTION_AGE = Parsed("DURATION|off", parse_connection_age)
DNS_REFRESH = Parsed("DURATION", parse_dns_refresh)
HEALTH_CHECK_INTERVAL = Parsed("DURATION", parse_health_check_interval)
CONNECT_TIMEOUT = Parsed("DURATION", parse_connect_timeout)
WORKER_TIMEOUT = Parsed("DURATION", parse_worker_timeout)
WORKERS = Parsed("N|auto", parse_workers)
STREAMS = Parsed("N", parse_max_concurrent_streams)
ROUTE = Parsed("LISTEN-TARGET", lambda text: parse_route(text, index=0))
ADMIN_ADDRESS = Parsed("HOST:PORT|off", parse_admin_address)
UNARY_METHODS = Parsed("/pkg.Svc/Method,...", parse_unary_methods)
DESCRIPTOR_SETS = Parsed("FILE[,FILE...]", parse_descriptor_sets)
EVENT_LOOP = Parsed("|".join(EVENT_LOOPS), check_event_loop)
