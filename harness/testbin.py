"""The real test peers built from Go modules, and the one safe way to build them.

Each peer is a script under ``scripts/`` that builds pinned binaries into the git-ignored
``.cache/testbin/`` and is a quick no-op (well under a second) when they are already there. This
module is the only caller of those scripts:

* ``python -m harness.testbin [NAME ...]`` (``make peers``, a prerequisite of ``make test``)
  builds them before pytest starts, printing each build's output and time;
* the test session builds, right after collection and outside any per-test timeout, the peers
  its selected tests need (a developer running one tier by hand), see ``tests/conftest.py``;
* fixtures then call :func:`build` again, which returns the remembered outcome at once.

Each build runs under an exclusive lock (``.cache/testbin/build.lock``), so two builds never
run at once (two test sessions, or ``make peers`` beside a tier run by hand), and in its own
process group, killed whole (``go build`` and its compilers included) on timeout or on any
interruption of the caller (Ctrl-C, pytest-timeout): no build is ever left running behind.

Concurrency: called from one thread; a daemon thread copies each build's output to its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
TESTBIN = REPO / ".cache" / "testbin"
LOCK_TIMEOUT = 60 * 60.0
"""Seconds to wait for another process's build to finish (it may be a cold 9-minute one)."""
LOCK_POLL_INTERVAL = 0.5
"""Seconds between two attempts at the build lock."""
KILL_TIMEOUT = 10.0
"""Seconds to wait for a killed build's process group leader to be reaped."""
TAIL_LINES = 40
"""Lines of a failed build's log shown in the error."""


class BuildError(RuntimeError):
    """A peer's build failed, timed out or could not start."""


class GoMissingError(BuildError):
    """The binaries are missing or stale and there is no Go toolchain to build them."""


@dataclass(frozen=True)
class Peer:
    """One build script and what it produces.

    ``script`` is relative to ``scripts/`` (or absolute); ``tiers`` are the test directories
    (relative to the repository) whose tests need the peer; ``timeout`` (seconds) bounds a cold
    build (measured cold times are in the README).
    """

    name: str
    script: str
    binaries: tuple[str, ...]
    tiers: tuple[str, ...]
    timeout: float

    def paths(self, directory: Path = TESTBIN) -> tuple[Path, ...]:
        return tuple(directory / binary for binary in self.binaries)


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            name="interop",
            script="build-interop.sh",
            binaries=("interop-server", "interop-client"),
            tiers=("tests/conformance",),
            timeout=20 * 60.0,  # cold: about 1.5 min
        ),
        Peer(
            name="k8s",
            script="build-k8s-testbin.sh",
            binaries=("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"),
            tiers=("tests/kubernetes", "tests/cluster"),
            timeout=60 * 60.0,  # cold: 9 to 13 min on 2 shared cores
        ),
        Peer(
            name="kwok",
            script="build-kwok.sh",
            binaries=("kwok",),
            tiers=("tests/cluster",),
            timeout=30 * 60.0,  # cold: about 5 min
        ),
    )
}

_outcomes: dict[str, tuple[Path, ...] | BuildError] = {}


def needed_by(paths: Iterable[Path]) -> list[Peer]:
    """The peers that tests at these paths need, in build order."""
    relative = {_relative(path) for path in paths}
    return [
        peer
        for peer in PEERS.values()
        if any(part.startswith(tier + "/") for part in relative for tier in peer.tiers)
    ]


def build(name: str, *, echo: IO[str] | None = None) -> tuple[Path, ...]:
    """The binaries of peer ``name``, built first if missing or stale; once per process.

    ``echo`` also receives the build's output as it comes (the log file always does). Raises
    :class:`GoMissingError` when Go is needed and absent, :class:`BuildError` on any other
    failure; a failure is remembered and raised again by later calls.
    """
    known = _outcomes.get(name)
    if isinstance(known, BuildError):
        raise known
    if known is not None:
        return known
    peer = PEERS[name]
    try:
        run_build(peer, echo=echo)
    except BuildError as error:
        _outcomes[name] = error
        raise
    _outcomes[name] = peer.paths()
    return peer.paths()


def run_build(peer: Peer, *, directory: Path = TESTBIN, echo: IO[str] | None = None) -> None:
    """Run ``peer``'s script once, locked, in its own process group; its log goes to
    ``directory``. Raises as :func:`build` does."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{peer.name}.build.log"
    with _exclusive(directory / "build.lock", echo=echo), log_path.open("w") as log:
        process = subprocess.Popen(
            ["bash", str(REPO / "scripts" / peer.script)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        copier = threading.Thread(
            target=_copy, args=(process.stdout, log, echo), name=f"build-{peer.name}", daemon=True
        )
        copier.start()
        code: int | None = None
        try:
            code = process.wait(timeout=peer.timeout)
        except BaseException as error:
            _kill_group(process)
            if not isinstance(error, subprocess.TimeoutExpired):
                raise
        finally:
            copier.join(timeout=KILL_TIMEOUT)  # the pipe ends once the whole group is gone
            process.stdout.close()
    if code is None:
        raise BuildError(
            f"{peer.script} did not finish in {peer.timeout:.0f} s and was killed; log {log_path}"
        )
    if code == 0:
        return
    if shutil.which("go") is None:
        raise GoMissingError(f"go not installed: cannot build the {peer.name} test peers")
    tail = log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    raise BuildError(f"{peer.script} exited with {code}; log {log_path}:\n" + "\n".join(tail))


def _copy(source: IO[str], log: IO[str], echo: IO[str] | None) -> None:
    for line in source:
        log.write(line)
        log.flush()
        if echo is not None:
            echo.write(line)
            echo.flush()


def _kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the build's whole process group (its session), then reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_TIMEOUT)


@contextlib.contextmanager
def _exclusive(path: Path, *, echo: IO[str] | None) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; the kernel drops it if this process dies."""
    with path.open("a+") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BuildError(
                        f"another build held {path} for over {LOCK_TIMEOUT:.0f} s"
                    ) from None
                if not told and echo is not None:
                    echo.write(f"waiting for another build to release {path}\n")
                    told = True
                time.sleep(LOCK_POLL_INTERVAL)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def main(argv: list[str]) -> int:
    """Build the named peers (all when none is named); print each one's time."""
    names = argv or list(PEERS)
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        print(f"error: unknown peer {unknown[0]!r}; known: {', '.join(PEERS)}", file=sys.stderr)
        return 2
    timings: list[str] = []
    for name in names:
        started = time.monotonic()
        print(f"== peer {name}: scripts/{PEERS[name].script}", flush=True)
        try:
            build(name, echo=sys.stdout)
        except BuildError as error:
            print(f"error: peer {name}: {error}", file=sys.stderr)
            return 1
        timings.append(f"{name} {time.monotonic() - started:.1f}s")
    print("peers ready in .cache/testbin: " + ", ".join(timings), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
