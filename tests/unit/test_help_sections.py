"""`--help` by sections: every option has one, defaults and variables in one notation, no
figures, exit codes and signals in the epilog."""

from __future__ import annotations

import re

import click
import pytest

from gproxy_mp import helptext
from gproxy_mp.cli import command
from gproxy_mp.errors import ExitCode


@pytest.fixture
def ctx() -> click.Context:
    return command.make_context("gproxy-mp", [], resilient_parsing=True)


@pytest.fixture
def help_text(ctx: click.Context) -> str:
    return command.get_help(ctx)


def test_every_option_has_a_section(ctx: click.Context) -> None:
    missing = [d.flag for d in helptext.describe(command, ctx) if d.section == helptext.CATCH_ALL]
    assert not missing, (
        f"options with no --help section: {', '.join(missing)}; add each to a section of "
        "SECTIONS in gproxy_mp/helptext.py (then regenerate docs/cli.md: "
        ".venv/bin/python -m harness.clidoc)")


def test_every_section_entry_names_an_option(ctx: click.Context) -> None:
    flags = {d.flag for d in helptext.describe(command, ctx)}
    stale = [flag for _, entries in helptext.SECTIONS for flag in entries if flag not in flags]
    assert not stale, (f"SECTIONS in gproxy_mp/helptext.py names {', '.join(stale)}, which no "
                       "option of gproxy-mp has: rename or remove the entry")


def test_an_option_without_a_section_is_still_shown() -> None:
    extra = helptext.SectionedCommand(
        "x", params=[click.Option(["--brand-new"], help="Something new.")])
    docs = helptext.describe(extra, click.Context(extra, auto_envvar_prefix="GPROXY"))
    assert [(d.flag, d.section, d.envvar) for d in docs] == [
        ("--help", "General", None),
        ("--brand-new", helptext.CATCH_ALL, "GPROXY_BRAND_NEW")]
    assert f"\n{helptext.CATCH_ALL}:\n" in extra.get_help(click.Context(extra))


def test_sections_are_printed_in_order(help_text: str) -> None:
    titles = [title for title, _ in helptext.SECTIONS]
    positions = [help_text.find(f"\n{title}:\n") for title in titles]
    assert -1 not in positions, help_text
    assert positions == sorted(positions), help_text


def test_every_option_names_its_variable_and_no_other_notation_of_defaults(
        ctx: click.Context) -> None:
    for doc in helptext.describe(command, ctx):
        if doc.flag not in ("--help", "--version"):
            assert doc.envvar == "GPROXY_" + doc.flag[2:].upper().replace("-", "_"), doc
        assert not re.search(r"\bdefault\b", doc.help, re.IGNORECASE), (
            f"{doc.flag}: its default belongs in show_default, not its help: {doc.help!r}")
        assert "Sentinel" not in doc.extra, doc


def test_help_has_no_figures(ctx: click.Context) -> None:
    for doc in helptext.describe(command, ctx):
        assert not re.search(r"\d+(\.\d+)?\s*%|µs|calls/s", doc.help), (
            f"{doc.flag}: a measured figure in --help goes stale; it belongs in the README's "
            f"benchmark section: {doc.help!r}")


def test_help_names_every_admin_endpoint_and_both_balancers(help_text: str) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/debug/endpoints"):
        assert path in help_text, path
    assert "least-request" in help_text
    assert "round-robins" not in help_text and "round robin only" not in help_text


def test_the_epilog_gives_each_exit_code_and_the_signals(help_text: str) -> None:
    described = {code for code, _ in helptext.EXIT_CODES}
    assert described == set(ExitCode) - {ExitCode.WORKER_BOOT}
    epilog = help_text[help_text.index("Exit codes:"):]
    for code in described:
        assert re.search(rf"^\s+{int(code)}\s+\S", epilog, re.MULTILINE), epilog
    for name in ("SIGTERM", "SIGINT", "SIGKILL"):
        assert name in epilog


def test_version_is_not_read_from_the_environment(ctx: click.Context) -> None:
    version = next(p for p in command.params if "--version" in p.opts)
    assert isinstance(version, click.Option)
    assert not version.allow_from_autoenv, "GPROXY_VERSION=... would print and exit 0"
