"""--event-loop: which loops are accepted, and what `auto` means here."""

from __future__ import annotations

import asyncio

import pytest

from gproxy_mp import loops
from gproxy_mp.errors import ConfigError


def test_auto_means_uvloop_where_it_is_installed_else_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loops, "uvloop_available", lambda: True)
    assert loops.resolve("auto") == "uvloop"
    monkeypatch.setattr(loops, "uvloop_available", lambda: False)
    assert loops.resolve("auto") == "asyncio"
    assert loops.runner("auto") is asyncio.run
    assert loops.resolve("asyncio") == "asyncio"


def test_uvloop_is_refused_where_it_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "uvloop_available", lambda: False)
    with pytest.raises(ConfigError, match="not installed"):
        loops.check_event_loop("uvloop")
    assert loops.check_event_loop("asyncio") == "asyncio"
    with pytest.raises(ConfigError, match="expected one of"):
        loops.check_event_loop("trio")


def test_the_uvloop_runner_runs_a_coroutine_on_a_uvloop_loop() -> None:
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loops.runner("uvloop")(loop_module()).startswith("uvloop")
