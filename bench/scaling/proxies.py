"""The proxies ``python -m bench scaling`` runs at each worker count, and its backends.

Each proxy starts under ``taskset -c`` on its step's cores, from the rig's command lines
(``bench.rig.configs``, as ``bench cost`` runs them): gproxy-mp on each data plane
(``PLANES``), nginx ``grpc_pass`` with as many workers, the Go gproxy with as many
``GOMAXPROCS``. ``check`` says whether one can be measured; ``affinity`` and ``worker_planes``
say where it ran and, for gproxy-mp, which data plane each worker's memory map shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.rig import configs
from bench.rig.peers import NATIVE, Config, Group
from bench.scaling.plan import CorePlan, cpu_list
from harness.admin import route_view
from harness.processes import REPO, free_port
from harness.waiting import wait_until

GPROXY, GPROXY_NATIVE, NGINX, GO_GPROXY = "gproxy", "gproxy-native", "nginx", "go-gproxy"
PLANES = {"grpcio": GPROXY, NATIVE: GPROXY_NATIVE}
"""gproxy-mp's data planes (``--data-plane``) and the proxy that measures each: step N runs
them as ``gproxy-wN`` and ``gproxy-native-wN``, the names ``bench cost`` gives them."""
CHECK_WAIT = 30.0
"""Seconds a proxy may take to answer its first check call."""
READY_WAIT = 60.0
"""Seconds gproxy-mp's N workers may take to be ready (a grpcio worker imports grpc)."""


@dataclass
class Running:
    """A proxy started for one step."""

    name: str
    config: Config
    group: Group
    admin: str | None = None


def taskset(cores: Sequence[int]) -> list[str]:
    return ["taskset", "-c", cpu_list(cores)]


def start_backends(work: Path, plan: CorePlan) -> Group:
    """``max(2, backend cores)`` one-worker nginx backends, backend i on backend core i mod B."""
    group = Group("backends")
    addresses = []
    try:
        for index in range(max(2, len(plan.backends))):
            directory = work / f"backend{index}"
            (directory / "body").mkdir(parents=True)
            port = free_port()
            conf = directory / "nginx.conf"
            conf.write_text(configs.nginx_backend(directory=directory, www=work / "www",
                                                  port=port))
            core = plan.backends[index % len(plan.backends)]
            group.start([*taskset((core,)), "nginx", "-c", str(conf), "-p", str(directory)],
                        log=directory / "out")
            addresses.append(f"127.0.0.1:{port}")
    except BaseException:
        group.stop()
        raise
    group.address = ",".join(addresses)
    return group


def start_proxy(work: Path, name: str, *, workers: int, cores: Sequence[int],
                backends: list[str], go_gproxy: str | None) -> Running:
    port, label = free_port(), f"{name}-w{workers}"
    group, log, admin = Group(label), work / f"{label}.out", None
    if name in PLANES.values():
        admin = f"127.0.0.1:{free_port()}"
        argv = gproxy_argv(name, port=port, backends=backends, workers=workers, admin=admin)
    elif name == NGINX:
        directory = work / label
        (directory / "body").mkdir(parents=True)
        conf = directory / "nginx.conf"
        conf.write_text(configs.nginx_proxy(directory=directory, port=port, backends=backends,
                                            workers=workers))
        argv = ["nginx", "-c", str(conf), "-p", str(directory)]
    elif name == GO_GPROXY and go_gproxy:
        argv = ["env", f"GOMAXPROCS={workers}",
                *configs.go_gproxy_argv(go_gproxy, port=port, backends=backends)]
    else:
        raise ValueError(f"unknown proxy {name!r}")
    group.start([*taskset(cores), *argv], log=log)
    return Running(name, Config(label, f"127.0.0.1:{port}", group), group, admin)


def gproxy_argv(name: str, *, port: int, backends: list[str], workers: int,
                admin: str) -> list[str]:
    """gproxy-mp's command line for proxy ``name`` (``GPROXY`` or ``GPROXY_NATIVE``): the rig's
    (``bench cost``'s), on that proxy's data plane, with an admin port to see workers ready."""
    data_plane = NATIVE if name == GPROXY_NATIVE else "grpcio"
    return [*configs.gproxy_argv(sys.executable, port=port, backends=backends, workers=workers,
                                 data_plane=data_plane), "--admin-address", admin]


def proxies_for(planes: list[str], go_gproxy: str | None) -> list[str]:
    """The proxies a run measures, in the table's order: gproxy-mp on each of ``planes``
    (``PLANES``' keys), nginx, and the Go gproxy when its binary is given."""
    return [*(PLANES[plane] for plane in PLANES if plane in planes), NGINX,
            *([GO_GPROXY] if go_gproxy else [])]


def ready_workers(admin: str) -> int:
    try:
        return sum(w["state"] == "ready" for w in route_view(admin)["workers"])
    except (OSError, IndexError, KeyError, ValueError):
        return 0


def check(running: Running, workers: int, workload: str) -> str:
    """"ok", or why the proxy cannot be measured: every gproxy-mp worker ready, then
    ``workload`` once with grpcio (status and exact messages)."""
    if running.admin and not wait_until(lambda: ready_workers(running.admin or "") == workers,
                                        timeout=READY_WAIT):
        return (running.group.exited()
                or f"not all {workers} workers ready within {READY_WAIT:.0f} s")
    out = subprocess.run(
        [sys.executable, "-m", "bench.rig.client", "check", running.config.address,
         "--wait", str(CHECK_WAIT)], check=False, capture_output=True, text=True, cwd=REPO,
        timeout=CHECK_WAIT + 60)
    exited = running.group.exited()
    if out.returncode != 0 or exited:
        return exited or f"check client exited {out.returncode}: {out.stderr[-300:]}"
    outcome: str = json.loads(out.stdout)[workload]
    return outcome


def affinity(group: Group) -> list[int]:
    """Every CPU some process of ``group`` may run on (what taskset set, as the kernel has it)."""
    cores: set[int] = set()
    for pid in group.pids():
        try:
            cores |= os.sched_getaffinity(pid)
        except ProcessLookupError:
            continue
    return sorted(cores)


ENGINE_MARKS = (("grpcio", "cygrpc"), (NATIVE, "gproxy_mp/_native"))
"""What a worker's memory map shows for each data plane, first match wins: grpc's core (a
native-plane worker never imports grpc), else the Rust engine's extension module."""


def mapped_plane(maps: str) -> str:
    """The data plane a worker's ``/proc/PID/maps`` text shows ("?" when neither)."""
    return next((plane for plane, mark in ENGINE_MARKS if mark in maps), "?")


def worker_planes(admin: str) -> list[str]:
    """Per running gproxy-mp worker, the data plane its memory map shows (``mapped_plane``)."""
    planes = []
    for worker in route_view(admin)["workers"]:
        if worker["pid"] is None:
            continue
        try:
            planes.append(mapped_plane(Path(f"/proc/{worker['pid']}/maps").read_text()))
        except OSError:
            planes.append("?")
    return sorted(planes)
