"""The gproxy-mp container image, built and run for real with podman: the one place tests and
the real-cluster tier's kubelet (`run_argv`, `remove`) build it and start, signal, inspect and
remove containers of it.

`build_image` runs ``scripts/build-image.sh`` (podman; the official base, or one it makes from
Debian packages where no registry is reachable) once per process and remembers the outcome, so
``tests/conftest.py`` can build before any test's timeout starts and the fixture reuses the
result. A rebuild of an unchanged tree is podman's layer cache (the COPY of the context is keyed
by its content): a few seconds. `Container` runs the image as deploy/base runs it: the image's
numeric user, a read-only root with only ``/tmp`` writable (the DaemonSet's emptyDir), no
capabilities, no privilege escalation; on the host network, so it reaches backends on loopback.
It is named ``gproxy-mp-test-<random>`` and only that name is ever stopped or removed.

Every podman command runs with ``CONTAINERS_CONF=scripts/containers.conf`` (runc, no default
ulimits: see that file) and a timeout.

Concurrency: none of its own; every call blocks the calling thread for a bounded time.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.processes import REPO, spawn, stop_group

BUILD_SCRIPT = REPO / "scripts" / "build-image.sh"
CONTAINERS_CONF = REPO / "scripts" / "containers.conf"
BUILD_LOG = REPO / ".cache" / "container" / "build.log"
BUILD_LOG_TAIL = 30
"""Lines of a failed build's log shown in the error."""
IMAGE = "gproxy-mp:test"
"""The tests' tag (``make image`` builds gproxy-mp:dev; both share every layer)."""
BUILD_TIMEOUT = 2400.0
"""Seconds a build may take in all: a cold one makes the base (~1 min), fetches Debian's Rust
toolchain (~170 MB) and every wheel; the script bounds each step itself as well."""
PODMAN_TIMEOUT = 60.0
"""Seconds one podman command (run --detach, kill, inspect, logs, rm) may take; each is a
quick call to local storage and runc, so this is only a bound."""
TMP_SIZE = "16m"
"""The writable /tmp, as deploy/base's emptyDir (sizeLimit 16Mi): the bus's socket dir."""
USER = "10001:10001"
"""The image's USER, and deploy/base's runAsUser/runAsGroup."""


class ContainerError(RuntimeError):
    """A podman command failed or timed out; the message carries its output."""


@dataclass(frozen=True)
class ImageFacts:
    size: int
    """Bytes, as ``podman image inspect`` reports (the layers unpacked)."""
    layers: int


def find_podman() -> str | None:
    return shutil.which("podman")


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def run_podman(*args: str, timeout: float = PODMAN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` to completion (exit status 0), its output captured, or
    `ContainerError`."""
    command = ["podman", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=podman_env(), check=False)
    except subprocess.TimeoutExpired as error:
        raise ContainerError(f"{' '.join(command)}: no answer within {timeout}s") from error
    if done.returncode != 0:
        raise ContainerError(
            f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def podman(*args: str, timeout: float = PODMAN_TIMEOUT) -> str:
    """`run_podman`'s stdout."""
    return run_podman(*args, timeout=timeout).stdout


_built: dict[str, str | ContainerError] = {}


def build_image(image: str = IMAGE, *, timeout: float = BUILD_TIMEOUT) -> str:
    """Build ``image`` with scripts/build-image.sh (podman) once per process, its output in
    `BUILD_LOG`; the image's name, or the first attempt's `ContainerError` again.

    On ``timeout`` the script's process group is stopped; the script bounds each of its own
    steps too (``timeout``, which runs them in groups of their own)."""
    if image not in _built:
        _built[image] = _build(image, timeout=timeout)
    outcome = _built[image]
    if isinstance(outcome, ContainerError):
        raise outcome
    return outcome


def _build(image: str, *, timeout: float) -> str | ContainerError:
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with BUILD_LOG.open("wb") as log:
        process = spawn([str(BUILD_SCRIPT)], stdout=log, stderr=subprocess.STDOUT,
                        env={**os.environ, "CONTAINER_ENGINE": "podman", "IMAGE": image})
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(process, timeout=PODMAN_TIMEOUT)
            return ContainerError(
                f"{BUILD_SCRIPT.name}: not done within {timeout}s; log {BUILD_LOG}")
    if code == 0:
        return image
    tail = "\n".join(BUILD_LOG.read_text(errors="replace").splitlines()[-BUILD_LOG_TAIL:])
    return ContainerError(f"{BUILD_SCRIPT.name} exited {code}; log {BUILD_LOG}:\n{tail}")


def inspect_image(image: str) -> ImageFacts:
    (facts,) = json.loads(podman("image", "inspect", image))
    return ImageFacts(size=int(facts["Size"]), layers=len(facts["RootFS"]["Layers"]))


def run_once(image: str, *args: str, timeout: float = PODMAN_TIMEOUT) -> str:
    """``podman run --rm`` the image with ``args`` (as deploy/ runs it); its stdout."""
    return podman("run", "--rm", *run_options(), image, *args, timeout=timeout)


def run_options(*, network: str = "host") -> list[str]:
    """How deploy/base's DaemonSet runs the container, in podman's words; ``network`` is
    podman's ``--network`` (``ns:/var/run/netns/NAME``: that namespace)."""
    return [
        "--network", network,
        "--user", USER,
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", f"/tmp:rw,size={TMP_SIZE},mode=1777",
        "--cap-drop", "all", "--security-opt", "no-new-privileges",
    ]


def run_argv(image: str, args: Sequence[str], *, name: str, network: str,
             env: Mapping[str, str], read_only_files: Sequence[Path]) -> list[str]:
    """``podman run`` of ``image`` in the foreground, as `run_options` runs it: removed when it
    exits (``--rm``); a SIGTERM or SIGINT to this podman reaches gproxy-mp (podman's signal
    proxy), but a SIGKILL does not: then `remove` it by ``name``. ``read_only_files`` are
    bind-mounted read-only at their own paths."""
    return [
        "podman", "run", "--rm", "--name", name, *run_options(network=network),
        *(f"--env={key}={value}" for key, value in env.items()),
        *(f"--volume={path}:{path}:ro" for path in read_only_files),
        image, *args,
    ]


def remove(name: str) -> None:
    """Remove the container ``name`` (one this process named), running or not."""
    run_podman("rm", "--force", "--ignore", "--time", "0", name)


class Container:
    """One detached container of ``image`` running ``args``; `remove` (also at `close`) is
    the only teardown, by the name this object made."""

    def __init__(self, image: str, args: Sequence[str]) -> None:
        self.name = f"gproxy-mp-test-{secrets.token_hex(4)}"
        podman("run", "--detach", "--name", self.name, *run_options(), image, *args)
        self.removed = False

    def pid(self) -> int:
        """The host pid of the container's PID 1 (gproxy-mp's supervisor); 0 once it exited."""
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).strip())

    def signal(self, signum: str) -> None:
        podman("kill", "--signal", signum, self.name)

    def wait_exit(self, *, timeout: float) -> int:
        """Its exit status, once it exited (`ContainerError` after ``timeout`` seconds)."""
        return int(podman("wait", self.name, timeout=timeout).strip())

    def logs(self) -> str:
        """What it wrote so far, stdout then stderr (gproxy-mp logs to stderr)."""
        done = run_podman("logs", self.name)
        return done.stdout + done.stderr

    def remove(self) -> None:
        if not self.removed:
            remove(self.name)
            self.removed = True


def root_is_read_only(pid: int) -> bool:
    """Whether the root mount that process ``pid`` sees is mounted read-only."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields[4] == "/":
            return "ro" in fields[5].split(",")
    raise AssertionError(f"process {pid} has no root mount")
