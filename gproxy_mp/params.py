"""Click parameter types: one per value grammar of the command line, each over a `config` parser.

A value is parsed once, by click, from the flag or its `GPROXY_<NAME>` variable, into the
typed value that `Settings` holds. A bad value raises `ConfigError` prefixed with the flag
(`--shutdown-delay: duration 'abc': ...`), so `cli` prints the one line `error: ...` and
exits 2, as for every other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import click

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
            flag = param.opts[-1] if param is not None and param.opts else ""
            message = str(e)
            if not message.startswith(flag):
                message = f"{flag}: {message}"
            if (envvar := _environment_source(param, ctx)) is not None:
                message = message.replace(flag, f"{flag} (from ${envvar})", 1)
            raise ConfigError(message) from None


def _environment_source(param: click.Parameter | None, ctx: click.Context | None) -> str | None:
    """The `GPROXY_*` variable a value came from; None when it came from the command line."""
    if param is None or ctx is None or param.name is None:
        return None
    if ctx.get_parameter_source(param.name) != click.core.ParameterSource.ENVIRONMENT:
        return None
    if isinstance(param.envvar, str):
        return param.envvar
    prefix = ctx.auto_envvar_prefix
    return f"{prefix}_{param.name.upper()}" if prefix else None


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
