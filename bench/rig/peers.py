"""The processes a benchmark runs: backends and proxies as groups, their CPU time, their end.

A ``Group`` is the set of processes this harness started for one role (both nginx backends;
one proxy), each in its own session. Its CPU time is the utime+stime of every root process and
all their live descendants (gproxy-mp's supervisor and its workers, nginx's master and its
workers), read by `harness.procfacts.cpu_seconds`; a process's figure already covers all its
threads. Starting and stopping are `harness.processes`' (``spawn``: own session each;
``stop_groups``: SIGTERM to the groups of the processes started here, then SIGKILL after a
timeout). Nothing else is ever signalled.

``start_peers`` lays out and starts the backends and every configuration in front of them
(config texts in ``bench.rig.configs``); each gets a free loopback port.

``ensure_tools`` installs missing Debian packages with apt-get when it can (root, apt-get
present), the way CI installs system packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.rig import configs
from harness import procfacts
from harness.processes import free_port, spawn, stop_groups

STOP_TIMEOUT = 15.0
"""Seconds a group gets after SIGTERM before SIGKILL (gproxy-mp drains with -d 0s)."""

BASELINE = "baseline"
"""The configuration ``bench cost --baseline DIR`` adds: one gproxy-mp worker from DIR."""

PACKAGES = {"nginx": "nginx-light", "haproxy": "haproxy", "h2load": "nghttp2-client"}
"""Debian package of each tool the harness runs."""


class ToolsMissingError(RuntimeError):
    """A needed tool is missing and cannot be installed here."""


def ensure_tools(tools: list[str]) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolsMissingError(
            f"missing {', '.join(missing)}; install Debian packages "
            f"{' '.join(PACKAGES[tool] for tool in missing)} (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                    *(PACKAGES[tool] for tool in missing)],
                   check=True, env=env, timeout=600, stdout=subprocess.DEVNULL)
    still = [tool for tool in tools if shutil.which(tool) is None]
    if still:
        raise ToolsMissingError(f"apt-get did not provide {', '.join(still)}")


@dataclass
class Group:
    """Processes started for one role; ``address`` is where clients connect (if anywhere)."""

    name: str
    address: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, argv: list[str], *, log: Path, source: Path | None = None) -> None:
        """Start `argv`; with `source`, a Python program imports gproxy_mp from that checkout
        (it runs there, with it first on PYTHONPATH) instead of this one."""
        env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
        with log.open("ab") as sink:
            self.processes.append(spawn(argv, stdout=sink, stderr=subprocess.STDOUT,
                                        cwd=source, env=env))
        self.logs.append(log)

    def pids(self) -> list[int]:
        return [pid for process in self.processes
                for pid in (process.pid, *procfacts.descendants(process.pid))]

    def cpu_seconds(self) -> float:
        return procfacts.cpu_seconds(self.pids())

    def exited(self) -> str | None:
        """A line naming a root process that has exited, with its log's tail, else None."""
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                return f"{self.name}: exited with {process.returncode}\n{tail}"
        return None

    def stop(self) -> None:
        stop_groups(self.processes, timeout=STOP_TIMEOUT)


@dataclass(frozen=True)
class Config:
    """A configuration: where it is reached, and the process group billed as its proxy."""

    name: str
    address: str
    proxy: Group | None


def start_peers(work: Path, names: list[str], *, backend_count: int,
                variants: dict[str, list[str]] | None = None,
                go_gproxy: str | None = None,
                pythons: dict[str, str] | None = None,
                baseline: Path | None = None) -> tuple[Group, list[Config]]:
    """nginx backends (one group; its ``address`` lists them all, comma-separated), then each
    named configuration in front of all of them; ``variants`` maps extra configuration names
    to gproxy-mp options added to one worker's command line; ``go_gproxy`` is the Go gproxy
    binary that configuration ``go-gproxy`` runs; ``pythons`` maps extra configuration names
    to the interpreter that runs gproxy-mp (one worker) for them; ``baseline`` is another
    checkout of gproxy-mp that configuration ``baseline`` (and ``baseline-VARIANT``) runs.

    If any start fails, whatever was already started is stopped before the error propagates.
    """
    backends = Group("backends")
    found: list[Config] = []
    try:
        addresses = []
        for index in range(backend_count):
            directory = work / f"backend{index}"
            (directory / "body").mkdir(parents=True)
            port = free_port()
            conf = directory / "nginx.conf"
            conf.write_text(configs.nginx_backend(directory=directory, www=work / "www",
                                                  port=port))
            backends.start(["nginx", "-c", str(conf), "-p", str(directory)],
                           log=directory / "out")
            addresses.append(f"127.0.0.1:{port}")
        backends.address = ",".join(addresses)
        for name in names:
            found.append(start_config(work, name, addresses, variants or {}, go_gproxy,
                                      pythons=pythons or {}, baseline=baseline))
    except BaseException:
        for group in (backends, *(c.proxy for c in found if c.proxy)):
            group.stop()
        raise
    return backends, found


def start_config(work: Path, name: str, backends: list[str],
                 variants: dict[str, list[str]], go_gproxy: str | None = None, *,
                 pythons: dict[str, str] | None = None,
                 baseline: Path | None = None) -> Config:
    if name == "direct":
        return Config(name, backends[0], None)
    port, group, log = free_port(), Group(name), work / f"{name}.out"
    if name in variants:
        group.start([*configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                          workers=1), *variants[name]], log=log)
    elif baseline is not None and (name == BASELINE or name.startswith(BASELINE + "-")):
        options = variants[name.removeprefix(BASELINE + "-")] if name != BASELINE else []
        group.start([*configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                          workers=1), *options], log=log, source=baseline)
    elif name in (pythons or {}):
        group.start(configs.gproxy_argv((pythons or {})[name], port=port, backends=backends,
                                        workers=1), log=log)
    elif name.startswith("gproxy-w"):
        group.start(configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                        workers=int(name.removeprefix("gproxy-w"))), log=log)
    elif name == "nginx":
        directory = work / "nginx-proxy"
        (directory / "body").mkdir(parents=True)
        conf = directory / "nginx.conf"
        conf.write_text(configs.nginx_proxy(directory=directory, port=port, backends=backends))
        group.start(["nginx", "-c", str(conf), "-p", str(directory)], log=log)
    elif name == "go-gproxy" and go_gproxy:
        group.start(configs.go_gproxy_argv(go_gproxy, port=port, backends=backends), log=log)
    elif name == "haproxy":
        conf = work / "haproxy.cfg"
        conf.write_text(configs.haproxy(port=port, backends=backends))
        group.start(["haproxy", "-f", str(conf), "-db"], log=log)
    else:
        raise ValueError(f"unknown configuration {name!r}")
    return Config(name, f"127.0.0.1:{port}", group)
