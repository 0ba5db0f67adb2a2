"""The Kubernetes sandbox as one resource: a network namespace, etcd and kube-apiserver in it,
and an admin client; what the Kubernetes tier's session fixtures and the Kubernetes discovery
benchmark both start.

Each step is a context manager that undoes itself on exit (processes stopped, namespace
deleted), so a pytest fixture can hold one step per fixture and a benchmark can stack them all.
Needs root (``ip netns``) and the Go-built binaries (:mod:`harness.kube.binaries`).

Concurrency: called from one thread; API calls run on the threads pinned in the namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness.kube import netns, pki
from harness.kube.binaries import ensure_binaries
from harness.kube.cluster import Kube
from harness.kube.controlplane import ControlPlane

NETNS_TIMEOUT = 10.0
"""Seconds ``ip netns pids`` may take."""


def remove_stale_namespaces() -> None:
    """Namespaces (and their processes) of earlier runs that died without teardown.

    Only ``gpx-k8s-<pid>`` names whose owner pid no longer exists are touched, and only the
    processes inside such a namespace are killed.
    """
    for name in netns.stale_names():
        pids = subprocess.run(
            ["ip", "netns", "pids", name],
            capture_output=True,
            text=True,
            timeout=NETNS_TIMEOUT,
            check=False,
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        netns.delete(name)


@contextlib.contextmanager
def network_namespace(
    tier: str = "", *, local_routes: Sequence[str] = ()
) -> Iterator[netns.NetworkNamespace]:
    """This process's ``gpx-k8s-<pid>[-tier]`` namespace with the sandbox's addresses (and
    ``local_routes``, see :func:`~harness.kube.netns.create`); stale ones of dead runs are
    removed first."""
    remove_stale_namespaces()
    name = f"{netns.NAME_PREFIX}{os.getpid()}" + (f"-{tier}" if tier else "")
    namespace = netns.create(name, netns.ADDRESSES, local_routes=local_routes)
    try:
        yield namespace
    finally:
        netns.delete(namespace.name)


def build_credentials(directory: Path) -> pki.Credentials:
    """CA, apiserver serving cert (for the apiserver's address) and tokens under ``directory``."""
    return pki.build_credentials(directory, ip_addresses=[netns.APISERVER_ADDRESS])


@contextlib.contextmanager
def control_plane(
    namespace: netns.NetworkNamespace, credentials: pki.Credentials, directory: Path
) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver running in ``namespace``, data and logs in ``directory``.

    Raises :class:`~harness.kube.binaries.GoMissingError` when the binaries are missing and
    cannot be built.
    """
    binaries = ensure_binaries()
    with netns.pinned(namespace, "k8s-probe") as probe_thread:
        plane = ControlPlane.build(
            binaries,
            credentials=credentials,
            namespace=namespace,
            directory=directory,
            probe_thread=probe_thread,
        )
        try:
            plane.start()
            yield plane
        finally:
            plane.stop()


@contextlib.contextmanager
def admin_client(
    plane: ControlPlane, namespace: netns.NetworkNamespace, credentials: pki.Credentials
) -> Iterator[Kube]:
    """The system:masters client of ``plane``, on its own pinned thread."""
    with Kube.admin(
        namespace, credentials, url=plane.apiserver.url, thread_name="k8s-admin"
    ) as kube:
        yield kube
