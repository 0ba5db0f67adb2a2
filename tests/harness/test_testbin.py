"""The Go peer builder: one build at a time, in its own process group, never left running.

Each test runs a small bash script in place of a real build script, so the lock, the timeout
and the interruption paths are exercised by real processes in seconds.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import procfacts, testbin
from harness.testbin import BuildError, GoMissingError, Peer
from harness.waiting import wait_until

GONE_TIMEOUT = 5.0
"""Seconds a killed build's processes may take to disappear."""

# Starts a long child (standing for `go build`'s compilers), records its pid, waits for it.
LONG_BUILD = 'sleep 300 & echo $! > "$1/child.pid"; wait\n'


def alive(pid: int) -> bool:
    """Running and not a zombie (a zombie still answers kill(0); it is gone for our purpose)."""
    return procfacts.identify(pid) is not None


def make_peer(tmp_path: Path, body: str, *, timeout: float = 60.0) -> Peer:
    script = tmp_path / "build.sh"
    script.write_text(f"set -eu\nset -- {tmp_path}\n{body}")
    return Peer(name="fake", script=str(script), binaries=(), tiers=(), timeout=timeout)


def child_pid(tmp_path: Path) -> int:
    path = tmp_path / "child.pid"
    wait_until(lambda: path.exists() and path.read_text().strip() != "", timeout=10.0)
    return int(path.read_text())


@pytest.fixture
def usr1_raises() -> Iterator[type[BaseException]]:
    """SIGUSR1 raises ``Interrupted`` in the main thread, as Ctrl-C or pytest-timeout would."""

    class Interrupted(BaseException):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    yield Interrupted
    signal.signal(signal.SIGUSR1, previous)


def test_a_build_that_times_out_is_killed_with_its_children(tmp_path: Path) -> None:
    peer = make_peer(tmp_path, LONG_BUILD, timeout=1.0)
    with pytest.raises(BuildError, match="did not finish in 1 s and was killed"):
        testbin.run_build(peer, directory=tmp_path)
    pid = child_pid(tmp_path)
    wait_until(lambda: not alive(pid), timeout=GONE_TIMEOUT)


def test_an_interrupted_build_is_killed_with_its_children(
    tmp_path: Path, usr1_raises: type[BaseException]
) -> None:
    peer = make_peer(tmp_path, LONG_BUILD)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        with pytest.raises(usr1_raises):
            testbin.run_build(peer, directory=tmp_path)
    finally:
        timer.cancel()
    pid = child_pid(tmp_path)
    wait_until(lambda: not alive(pid), timeout=GONE_TIMEOUT)


def test_two_builds_never_run_at_once(tmp_path: Path) -> None:
    # Each build appends "start" then "end" around a short sleep; overlapping builds would
    # interleave the lines.
    peer = make_peer(tmp_path, 'echo start >> "$1/trace"; sleep 0.5; echo end >> "$1/trace"\n')
    errors: list[BaseException] = []

    def run() -> None:
        try:
            testbin.run_build(peer, directory=tmp_path)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not errors
    assert (tmp_path / "trace").read_text().split() == ["start", "end"] * 3


def test_a_failed_build_reports_the_tail_of_its_log(tmp_path: Path) -> None:
    peer = make_peer(tmp_path, 'echo "go: module lookup disabled"; exit 3\n')
    with pytest.raises(BuildError, match=r"exited with 3(.|\n)*module lookup disabled"):
        testbin.run_build(peer, directory=tmp_path)


def test_without_go_a_failed_build_says_go_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    peer = make_peer(tmp_path, "exit 1\n")
    with pytest.raises(GoMissingError, match="go not installed"):
        testbin.run_build(peer, directory=tmp_path)


def test_the_tiers_that_need_a_peer_are_found_from_test_paths() -> None:
    paths = [
        testbin.REPO / "tests/kubernetes/test_resolver.py",
        testbin.REPO / "tests/unit/test_model.py",
    ]
    assert [peer.name for peer in testbin.needed_by(paths)] == ["k8s"]
    assert testbin.needed_by([testbin.REPO / "tests/unit/test_model.py"]) == []
    conformance = testbin.REPO / "tests/conformance/test_interop.py"
    assert [peer.name for peer in testbin.needed_by([conformance])] == ["interop"]


def test_make_peers_rejects_an_unknown_peer(capsys: pytest.CaptureFixture[str]) -> None:
    assert testbin.main(["nope"]) == 2
    assert "unknown peer 'nope'" in capsys.readouterr().err
