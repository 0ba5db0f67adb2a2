"""The running peers of a test or benchmark: backend programs, the proxy, and the `Launcher`
that starts them for one test and stops them all.

`Backend` runs ``python -m harness.backend`` and waits (bounded) for its ``PORT`` line; `Proxy`
runs ``python -m gproxy_mp`` and remembers every descendant it sees; both start in a session of
their own and stop through `harness.processes` (SIGTERM to the group, a bounded wait, SIGKILL).
For the proxy, teardown also SIGKILLs every descendant seen while it ran that is still alive
(matched by pid *and* creation time, `harness.procfacts.ProcessId`, so only processes this
module started are ever touched). `route` and `proxy_args` build the proxy's command line.

Concurrency: a ``Proxy`` runs one daemon thread that samples the supervisor's descendants
every ``SAMPLE_INTERVAL``; everything else is called from the test thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from harness import client, procfacts
from harness.backend import refusing
from harness.processes import authority, read_line, signal_group, spawn, stop_group

BACKEND_START_TIMEOUT = 20.0
"""Seconds a backend may take to print its ``PORT`` line (interpreter + grpc import)."""
BACKEND_STOP_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL for a backend (its own grace is 1 s)."""
PROXY_STOP_TIMEOUT = 10.0
"""Seconds between SIGTERM and SIGKILL of the proxy's group at teardown."""
SAMPLE_INTERVAL = 0.1
"""Seconds between samples of the supervisor's descendants."""


class Backend:
    """A running backend program: ``python -m harness.backend --name NAME [...]
    --stop-on-stdin-eof``.

    ``host`` and ``port`` choose where it listens (by default the program's own: 127.0.0.1, any
    port); ``extra_args`` are more of its options (``--refuse-all``, ``--reflection``,
    ``--max-metadata-size``, ...); ``command_prefix`` runs it through a program that execs it
    (``ip netns exec NS``), so the pid held is still the backend's. ``log_prefix`` names its
    log file in ``log_dir``.
    """

    MODULE = "harness.backend"

    def __init__(
        self,
        name: str,
        *,
        log_dir: Path,
        host: str | None = None,
        port: int = 0,
        extra_args: Sequence[str] = (),
        command_prefix: Sequence[str] = (),
        stop_timeout: float = BACKEND_STOP_TIMEOUT,
        log_prefix: str = "backend",
    ) -> None:
        self.name = name
        self.host = "127.0.0.1" if host is None else host
        self.stop_timeout = stop_timeout
        self.log_path = log_dir / f"{log_prefix}-{name}.log"
        self._log = self.log_path.open("ab")
        where = [] if host is None and port == 0 else ["--host", self.host, "--port", str(port)]
        self.process = spawn(
            [
                *command_prefix,
                sys.executable,
                "-m",
                self.MODULE,
                "--name",
                name,
                *where,
                *extra_args,
                "--stop-on-stdin-eof",
            ],
            stdin=subprocess.PIPE,  # closed when this process dies: the backend then stops
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        try:
            line = read_line(self.process.stdout, timeout=BACKEND_START_TIMEOUT)
        except TimeoutError:
            self.kill()
            raise
        if not line.startswith(b"PORT "):
            self.kill()
            raise RuntimeError(
                f"{self.MODULE} {name} did not announce a port on {self.host}:{port}: "
                f"{line!r}\n{self.output()}"
            )
        self.port = int(line.split()[1])
        self.address = authority(self.host, self.port)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return f"--- backend {self.name}\n{self.log_path.read_text(errors='replace')}"

    def stats(self) -> dict[str, object]:
        with client.open_channel(self.address) as channel:
            return client.stats(channel, timeout=5)

    def counter(self, key: str) -> int:
        """One integer field of ``Stats``: ``calls``, ``cancelled`` or ``sleeping``."""
        value = self.stats()[key]
        assert isinstance(value, int), value
        return value

    def refused(self) -> int:
        """Calls a ``--refuse-all`` backend has answered UNAVAILABLE so far."""
        with client.open_channel(self.address) as channel:
            callable_ = channel.unary_unary(
                refusing.CONTROL_METHOD, request_serializer=None, response_deserializer=None
            )
            reply: bytes = callable_(b"", timeout=5)
        return int(reply)

    def kill(self) -> None:
        """SIGKILL the backend's group and reap it."""
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=self.stop_timeout)
        self._close()

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL after ``stop_timeout`` seconds."""
        stop_group(self.process, timeout=self.stop_timeout)
        self._close()

    def _close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()


class Proxy:
    """A running ``python -m gproxy_mp`` supervisor (and, through it, its workers)."""

    def __init__(self, *args: str, log_dir: Path, index: int = 0) -> None:
        self.args = args
        self.stdout_path = log_dir / f"proxy-{index}.stdout"
        self.stderr_path = log_dir / f"proxy-{index}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = spawn([sys.executable, "-m", "gproxy_mp", *args], stdout=out, stderr=err)
        self._seen: set[procfacts.ProcessId] = set()
        self._seen_lock = threading.Lock()
        self._stopped = threading.Event()
        self._sampler = threading.Thread(
            target=self._sample, name=f"proxy-{index}-sampler", daemon=True
        )
        self._sampler.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _sample(self) -> None:
        # Not ``process.poll()``: that would reap the supervisor, and `stop` signals its
        # group only while it is unreaped.
        while not self._stopped.is_set() and procfacts.identify(self.pid) is not None:
            found = {
                ident
                for pid in procfacts.descendants(self.pid)
                if (ident := procfacts.identify(pid))
            }
            with self._seen_lock:
                self._seen |= found
            self._stopped.wait(SAMPLE_INTERVAL)

    def seen_descendants(self) -> set[procfacts.ProcessId]:
        """Every descendant of the supervisor sampled so far (alive or not)."""
        with self._seen_lock:
            return set(self._seen)

    def surviving_descendants(self) -> list[int]:
        """Descendants ever seen that are still alive (same pid and start time)."""
        seen = self.seen_descendants()
        return sorted(ident.pid for ident in seen if procfacts.is_running(ident))

    def workers(self) -> list[int]:
        """Current direct children of the supervisor."""
        return procfacts.children(self.pid)

    def output(self) -> str:
        def read(path: Path) -> str:
            return path.read_text(errors="replace") if path.exists() else ""

        return (
            f"--- gproxy-mp {' '.join(self.args)} (pid {self.pid}, rc {self.process.poll()})\n"
            f"--- stdout\n{read(self.stdout_path)}--- stderr\n{read(self.stderr_path)}"
        )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def send(self, signum: int) -> None:
        """Signal the supervisor alone, as Kubernetes does with PID 1."""
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code, or ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        return self.process.wait(timeout=timeout)

    def wait_serving(self, address: str, timeout: float = 20.0) -> str:
        """Wait until a Whoami call through the proxy succeeds; return the backend name."""
        deadline = time.monotonic() + timeout
        last = "no attempt"
        with client.open_channel(address) as channel:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"proxy exited with {self.process.returncode}\n{self.output()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{address} not serving after {timeout}s: {last}\n{self.output()}"
                    )
                try:
                    return client.whoami(channel, timeout=min(remaining, 2.0))
                except grpc.RpcError as error:
                    last = client.describe(error)
                time.sleep(min(client.RETRY_INTERVAL, max(deadline - time.monotonic(), 0)))

    def stop(self) -> None:
        """SIGTERM the group, wait, SIGKILL the group and every surviving descendant."""
        stop_group(self.process, timeout=PROXY_STOP_TIMEOUT)
        self._stopped.set()
        self._sampler.join(timeout=5)
        for ident in self.seen_descendants():
            if procfacts.is_running(ident):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(ident.pid, signal.SIGKILL)


class Launcher:
    """Starts backends and proxies for one test (or module) and stops them all."""

    def __init__(self, log_dir: Path, *, data_plane: str | None = None) -> None:
        self.log_dir = log_dir
        self.data_plane = data_plane
        """`--data-plane` of every proxy started here; None: the proxy's default."""
        self.backends: list[Backend] = []
        self.proxies: list[Proxy] = []

    def start_backend(self, name: str, *, host: str | None = None, port: int = 0,
                      extra_args: Sequence[str] = (), log_prefix: str = "backend") -> Backend:
        """Start a backend (``host``/``port``/``extra_args``/``log_prefix``: see `Backend`);
        it is stopped at `close`."""
        backend = Backend(name, log_dir=self.log_dir, host=host, port=port,
                          extra_args=extra_args, log_prefix=log_prefix)
        self.backends.append(backend)
        return backend

    def start_proxy(self, *args: str) -> Proxy:
        if self.data_plane is not None:
            args = (*args, "--data-plane", self.data_plane)
        proxy = Proxy(*args, log_dir=self.log_dir, index=len(self.proxies))
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        for backend in self.backends:
            backend.stop()


def route(listen_port: int, *backends: Backend | str) -> str:
    """A ``-p`` value: ``127.0.0.1:PORT-static:///addr1,addr2,...``."""
    addresses = ",".join(b if isinstance(b, str) else b.address for b in backends)
    return f"127.0.0.1:{listen_port}-static:///{addresses}"


def proxy_args(
    *routes: str,
    workers: int = 2,
    shutdown_delay: str = "0s",
    drain_timeout: str = "2s",
    admin_address: str | None = "off",
) -> list[str]:
    """Command-line arguments for ``gproxy-mp``.

    Defaults keep teardown fast (no shutdown delay, short drain) and keep
    proxies of concurrent tests from sharing the default admin port;
    ``admin_address=None`` leaves the option out.
    """
    args: list[str] = []
    for value in routes:
        args += ["-p", value]
    return [
        *args,
        "--workers",
        str(workers),
        "-d",
        shutdown_delay,
        "--drain-timeout",
        drain_timeout,
        *(["--admin-address", admin_address] if admin_address is not None else []),
        "--log-level",
        "info",
    ]
