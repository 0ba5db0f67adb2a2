"""docs/cli.md, the command-line reference, generated from the click definitions.

`python -m harness.clidoc` writes it; `--check` exits 1 when the file on disk differs (and
`tests/unit/test_cli_doc.py` fails). It reads the options through `gproxy_mp.helptext.describe`,
the same reading `--help` prints, so the page and `--help` agree on every section, default and
variable; exit codes and signals come from the same tables as `--help`'s epilog. It lives in
the harness, not the product: the installed package has no use for a Markdown generator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from gproxy_mp.cli import command
from gproxy_mp.helptext import EXIT_CODES, SIGNALS, VALUES, describe, grouped

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
REGENERATE = ".venv/bin/python -m harness.clidoc"


def cell(text: str) -> str:
    """`text` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def code(text: str) -> str:
    return f"`{cell(text)}`" if text else ""


def render() -> str:
    """The whole page."""
    # The command's own context settings (`-h, --help`, the GPROXY prefix), as a real run has
    # them: click caches the help option on the command, so a context without them would
    # render whatever an earlier invocation in the same process left behind.
    ctx = click.Context(command, info_name="gproxy-mp", **command.context_settings)
    lines = [
        "# gproxy-mp command line",
        "",
        f"<!-- Generated from the click definitions by `{REGENERATE}`; do not edit. -->",
        "",
        "```",
        "gproxy-mp [OPTIONS]",
        "```",
        "",
        " ".join((command.help or "").split()),
        "",
    ]
    for title, docs in grouped(describe(command, ctx)):
        lines += [f"## {title}", "", "| option | environment variable | default | meaning |",
                  "|---|---|---|---|"]
        lines += [f"| {code(d.spec)} | {code(d.envvar or '')} | {cell(d.default or '—')} "
                  f"| {cell(d.help)} |" for d in docs]
        lines.append("")
    lines += ["## Values", "", "```", VALUES, "```", "",
              "## Exit codes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {int(c)} | {cell(meaning)} |" for c, meaning in EXIT_CODES]
    lines += ["", "## Signals", "", "| signal | what gproxy-mp does |", "|---|---|"]
    lines += [f"| {cell(name)} | {cell(meaning)} |" for name, meaning in SIGNALS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.clidoc", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if {PAGE.name} is stale instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"error: docs/cli.md is stale: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
