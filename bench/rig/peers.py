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

With ``tls`` (a `Tls`, made by ``make_tls`` with `harness.certs`), each backend also listens
with TLS on a second port (same server block, so the same backend), and the configurations
``direct-tls``, ``gproxy-w1-tls`` and ``nginx-tls`` can run: TLS on every hop, towards those
TLS ports. Their ``Config.tls`` tells the clients to speak TLS.

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
from harness.certs import CertificateAuthority
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
class Tls:
    """Test PKI of the TLS configurations (PEM files): the CA every client and proxy trusts, the
    backends' certificate and key, the proxies' certificate and key. Both certificates carry
    the SANs 127.0.0.1 and their DNS name; ``backend_name`` is the name a proxy verifies."""

    ca: Path
    backend_cert: Path
    backend_key: Path
    proxy_cert: Path
    proxy_key: Path
    backend_name: str


TLS_CONFIGS = ("direct-tls", "gproxy-w1-tls", "nginx-tls")
"""The configurations with TLS on every hop; each is its name minus ``-tls``, over TLS."""
NATIVE_PREFIX = "gproxy-native-w"
"""``gproxy-native-wN``: gproxy-mp with N workers on the native data plane (`--data-plane`)."""
NATIVE = "native"
"""The ``--data-plane`` value of the native configurations."""
GRPCIO = "grpcio"
"""The ``--data-plane`` value of ``gproxy-wN``, the variants and the ``--python`` ones."""
TLS_SUFFIX = "-tls"
BACKEND_TLS_NAME, PROXY_TLS_NAME = "backend.bench.test", "proxy.bench.test"


def make_tls(directory: Path) -> Tls:
    """A new test CA in ``directory`` and a server certificate for the backends and one for
    the proxies (real EC P-256 certificates, `harness.certs`)."""
    authority = CertificateAuthority(directory, "gproxy-bench-ca")
    backend = authority.issue("backend", dns=[BACKEND_TLS_NAME], ips=["127.0.0.1"])
    proxy = authority.issue("proxy", dns=[PROXY_TLS_NAME], ips=["127.0.0.1"])
    return Tls(ca=authority.cert, backend_cert=backend.cert, backend_key=backend.key,
               proxy_cert=proxy.cert, proxy_key=proxy.key, backend_name=BACKEND_TLS_NAME)


@dataclass(frozen=True)
class Config:
    """A configuration: where it is reached, and the process group billed as its proxy;
    ``tls``: the CA a client verifies it with when it speaks TLS (None: plaintext)."""

    name: str
    address: str
    proxy: Group | None
    tls: Path | None = None


def start_peers(work: Path, names: list[str], *, backend_count: int,
                variants: dict[str, list[str]] | None = None,
                go_gproxy: str | None = None,
                pythons: dict[str, str] | None = None,
                baseline: Path | None = None,
                tls: Tls | None = None) -> tuple[Group, list[Config]]:
    """nginx backends (one group; its ``address`` lists them all, comma-separated), then each
    named configuration in front of all of them; ``variants`` maps extra configuration names
    to gproxy-mp options added to one worker's command line; ``go_gproxy`` is the Go gproxy
    binary that configuration ``go-gproxy`` runs; ``pythons`` maps extra configuration names
    to the interpreter that runs gproxy-mp (one worker) for them; ``baseline`` is another
    checkout of gproxy-mp that configuration ``baseline`` (and ``baseline-VARIANT``) runs;
    ``tls``: the backends also listen with TLS on a port of their own each, which the
    ``TLS_CONFIGS`` use (they need it).

    If any start fails, whatever was already started is stopped before the error propagates.
    """
    backends = Group("backends")
    found: list[Config] = []
    try:
        addresses, tls_addresses = [], []
        for index in range(backend_count):
            directory = work / f"backend{index}"
            (directory / "body").mkdir(parents=True)
            port = free_port()
            conf = directory / "nginx.conf"
            if tls:
                tls_port = free_port()
                conf.write_text(configs.nginx_backend_tls(
                    directory=directory, www=work / "www", port=port, tls_port=tls_port,
                    cert=tls.backend_cert, key=tls.backend_key))
                tls_addresses.append(f"127.0.0.1:{tls_port}")
            else:
                conf.write_text(configs.nginx_backend(directory=directory, www=work / "www",
                                                      port=port))
            backends.start(["nginx", "-c", str(conf), "-p", str(directory)],
                           log=directory / "out")
            addresses.append(f"127.0.0.1:{port}")
        backends.address = ",".join(addresses)
        for name in names:
            if name in TLS_CONFIGS:
                if not tls:
                    raise ValueError(f"configuration {name!r} needs the TLS material (tls=)")
                found.append(start_tls_config(work, name, tls_addresses, tls))
            else:
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
    if name in variants:  # options of the grpcio plane (--unary-methods, --grpc-engine, ...)
        group.start([*configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                          workers=1, data_plane=GRPCIO), *variants[name]],
                    log=log)
    elif baseline is not None and (name == BASELINE or name.startswith(BASELINE + "-")):
        options = variants[name.removeprefix(BASELINE + "-")] if name != BASELINE else []
        # The grpcio plane, as gproxy-w1 and the variants: named where that checkout has
        # --data-plane (gproxy_mp/dataplane.py); an older one knows only grpcio.
        plane = GRPCIO if (baseline / "gproxy_mp" / "dataplane.py").exists() else None
        group.start([*configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                          workers=1, data_plane=plane), *options],
                    log=log, source=baseline)
    elif name in (pythons or {}):
        group.start(configs.gproxy_argv((pythons or {})[name], port=port, backends=backends,
                                        workers=1, data_plane=GRPCIO), log=log)
    elif name.startswith("gproxy-w"):
        group.start(configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                        workers=int(name.removeprefix("gproxy-w")),
                                        data_plane=GRPCIO), log=log)
    elif name.startswith(NATIVE_PREFIX):  # the native data plane, in the same run
        group.start(configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                        workers=int(name.removeprefix(NATIVE_PREFIX)),
                                        data_plane=NATIVE), log=log)
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


def start_tls_config(work: Path, name: str, backends: list[str], tls: Tls) -> Config:
    """One of ``TLS_CONFIGS`` in front of ``backends`` (their TLS addresses): TLS on both hops,
    otherwise as the configuration it is named after."""
    if name == "direct-tls":
        return Config(name, backends[0], None, tls=tls.ca)
    port, group, log = free_port(), Group(name), work / f"{name}.out"
    if name == "gproxy-w1-tls":
        group.start([*configs.gproxy_argv(sys.executable, port=port, backends=backends,
                                          workers=1, data_plane=GRPCIO),
                     *configs.gproxy_tls_options(cert=tls.proxy_cert, key=tls.proxy_key,
                                                 ca=tls.ca, server_name=tls.backend_name)],
                    log=log)
    elif name == "nginx-tls":
        directory = work / "nginx-proxy-tls"
        (directory / "body").mkdir(parents=True)
        conf = directory / "nginx.conf"
        conf.write_text(configs.nginx_proxy_tls(
            directory=directory, port=port, backends=backends, cert=tls.proxy_cert,
            key=tls.proxy_key, ca=tls.ca, server_name=tls.backend_name))
        group.start(["nginx", "-c", str(conf), "-p", str(directory)], log=log)
    else:
        raise ValueError(f"unknown TLS configuration {name!r}")
    return Config(name, f"127.0.0.1:{port}", group, tls=tls.ca)
