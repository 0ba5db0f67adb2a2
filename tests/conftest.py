"""Shared test configuration.

A tier whose real peer (a DNS server, an API server, a Go-built interop binary) is missing may
skip on a laptop with a one-line reason. CI sets GPROXY_REQUIRE_ALL_TIERS=1, which turns every
such skip into a failure, so a green CI run means every tier really ran.

Fixtures shared by several tiers come from plugin modules (``pytest_plugins`` below, which
pytest reads only in this rootdir conftest); tier conftests hold only their tier's own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness import container, testbin

REQUIRE_ALL_TIERS = os.environ.get("GPROXY_REQUIRE_ALL_TIERS") == "1"

pytest_plugins = [
    "harness.fixtures",  # launcher, backends, unavailable_backends, proxies, shared_port_backends
    "harness.task_leaks",  # every test fails if it leaves asyncio tasks behind
    "tests.dns.fixtures",  # dns_server
    "pytester",  # pytest on a small test file, for the harness's own plugins
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL_TIERS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tier must run: {report.longrepr}"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the Go peers and the container image the selected tests need, before any test and
    its timeout starts.

    ``make test`` has built them already (``make peers``), so this is a quick check; for a tier
    run by hand on a fresh machine it is the cold build, shown as it goes. A failure is left to
    the tier's fixture, which gets the same remembered error and skips or fails with it.
    """
    if session.config.option.collectonly:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for peer in testbin.needed_by(item.path for item in session.items):
        started = time.monotonic()
        if reporter is not None:
            reporter.write_line(f"test peer {peer.name}: scripts/{peer.script} ...")
        try:
            testbin.build(peer.name)
            outcome = "ready"
        except testbin.BuildError as error:
            outcome = f"failed: {str(error).splitlines()[0]}"
        if reporter is not None:
            elapsed = time.monotonic() - started
            reporter.write_line(f"test peer {peer.name}: {outcome} ({elapsed:.1f} s)")
    tiers = [Path(__file__).parent / tier for tier in ("container", "cluster")]  # the image's
    if container.find_podman() and any(t in i.path.parents for i in session.items for t in tiers):
        started = time.monotonic()
        if reporter is not None:
            reporter.write_line(f"container image {container.IMAGE}: scripts/build-image.sh "
                                f"(log {container.BUILD_LOG.relative_to(container.REPO)}) ...")
        try:
            facts = container.inspect_image(container.build_image())
            outcome = f"ready, {facts.size / 1e6:.0f} MB in {facts.layers} layers"
        except container.ContainerError as error:
            outcome = f"failed: {str(error).splitlines()[0]}"
        if reporter is not None:
            elapsed = time.monotonic() - started
            reporter.write_line(f"container image {container.IMAGE}: {outcome} ({elapsed:.1f} s)")
