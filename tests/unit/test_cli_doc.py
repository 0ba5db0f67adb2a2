"""docs/cli.md is what `python -m harness.clidoc` generates from the click definitions now."""

from __future__ import annotations

from harness import clidoc


def test_docs_cli_md_is_current() -> None:
    on_disk = clidoc.PAGE.read_text() if clidoc.PAGE.exists() else ""
    assert on_disk == clidoc.render(), (
        f"docs/cli.md is stale (an option, its help, default or section changed): run "
        f"{clidoc.REGENERATE} and commit the result")


def test_the_page_lists_every_option_its_variable_and_the_exit_codes() -> None:
    page = clidoc.render()
    for flag in ("--proxy", "--workers", "--admin-address", "--balancer", "--tls-cert",
                 "--check"):
        assert f"{flag} " in page or f"{flag}`" in page, flag
    for variable in ("GPROXY_PROXY", "GPROXY_WORKERS", "GPROXY_ADMIN_ADDRESS"):
        assert f"`{variable}`" in page, variable
    for heading in ("## Routes", "## Workers and shutdown", "## Exit codes", "## Signals"):
        assert heading in page, heading
