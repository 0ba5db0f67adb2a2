"""kube-controller-manager, kube-scheduler and kwok: the control-plane programs that turn
Deployments into pods, pods into nodes, and pods into EndpointSlices (the real-cluster tier).

Each is a :class:`~harness.kube.controlplane.Member`: a dataclass holding its
:class:`~harness.kube.process.PeerProcess`, its ``argv`` and a ``start`` that spawns it and waits
for its probe. All three talk to the API server with the admin kubeconfig (system:masters), as
a kubeadm control plane's components do with their own certificates; no leader election (one of
each). Health ports are on the namespace's 127.0.0.1, which only this test run uses.

kwok simulates the nodes (their Ready condition and leases) and moves a bound pod to Running
with an IP from its node's ``spec.podCIDR`` (``kwok_stages.yaml``); everything a kubelet does to
the pod after that (start its process, probe it, delete it after its grace period) is
:mod:`harness.kube.kubelet`'s job.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.kube.netns import PinnedThread
from harness.kube.process import PROBE_TIMEOUT, PeerProcess, wait_ready

START_TIMEOUT = 60.0
"""Seconds a controller may take to answer its health check (informers sync on 2 busy cores)."""
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
KWOK_PORT = 10247
KWOK_STAGES = Path(__file__).with_name("kwok_stages.yaml")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
"""Nodes annotated ``kwok.x-k8s.io/node=fake`` are the ones kwok manages."""
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
"""The same range the API server allocates Service IPs from."""


def probe_healthz(url: str, *, verify: bool) -> str | None:
    """None when ``GET url`` answers 200, else what went wrong (run on a pinned thread)."""
    context = None
    if url.startswith("https:") and not verify:
        # The controllers serve /healthz with a self-signed certificate they made at start.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=context) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read().decode(errors='replace')[-300:]}"
    except OSError as error:
        return repr(error)


def component_args(binary: Path, kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """What kube-controller-manager and kube-scheduler both take: the admin kubeconfig for the
    API and for delegated authn/z, a health port on the namespace's 127.0.0.1 with a
    self-signed certificate in ``cert_dir``, no leader election."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def start_component(peer: PeerProcess, argv: list[str], cert_dir: Path, port: int,
                    probe_thread: PinnedThread) -> None:
    """Spawn and wait for ``https://127.0.0.1:port/healthz``."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    peer.spawn(argv)
    url = f"https://127.0.0.1:{port}/healthz"
    wait_ready(peer, probe_thread, lambda: probe_healthz(url, verify=False), START_TIMEOUT)


@dataclass
class ControllerManager:
    binary: Path
    kubeconfig: Path
    service_account_key: Path
    ca_cert: Path
    cert_dir: Path
    peer: PeerProcess

    def argv(self) -> list[str]:
        return [
            *component_args(self.binary, self.kubeconfig, CONTROLLER_MANAGER_PORT,
                            self.cert_dir),
            # Every default controller: deployments, replica sets, daemon sets, the EndpointSlice
            # controller, namespace deletion, garbage collection, node lifecycle, ...
            "--controllers=*",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-private-key-file={self.service_account_key}",
            f"--root-ca-file={self.ca_cert}",
            # Nodes bring their own spec.podCIDR (kwok allocates pod IPs from it).
            "--allocate-node-cidrs=false",
        ]

    def start(self, probe_thread: PinnedThread) -> None:
        start_component(self.peer, self.argv(), self.cert_dir, CONTROLLER_MANAGER_PORT,
                        probe_thread)


@dataclass
class Scheduler:
    binary: Path
    kubeconfig: Path
    cert_dir: Path
    peer: PeerProcess

    def argv(self) -> list[str]:
        return component_args(self.binary, self.kubeconfig, SCHEDULER_PORT, self.cert_dir)

    def start(self, probe_thread: PinnedThread) -> None:
        start_component(self.peer, self.argv(), self.cert_dir, SCHEDULER_PORT, probe_thread)


@dataclass
class Kwok:
    binary: Path
    kubeconfig: Path
    peer: PeerProcess

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={KWOK_STAGES}",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            # kwok renews each node's Lease, which is what the node lifecycle controller reads.
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{KWOK_PORT}",
        ]

    def start(self, probe_thread: PinnedThread) -> None:
        self.peer.spawn(self.argv())
        url = f"http://127.0.0.1:{KWOK_PORT}/healthz"
        wait_ready(self.peer, probe_thread, lambda: probe_healthz(url, verify=True),
                   START_TIMEOUT)
