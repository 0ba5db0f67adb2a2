"""A real Kubernetes control plane with simulated nodes whose pods are real processes.

What runs (all in one network namespace of this test run, ``gpx-k8s-<pid>-cluster``):

* etcd and kube-apiserver, as in the Kubernetes tier (:mod:`harness.kube.controlplane`);
* kube-controller-manager (every default controller: Deployments, ReplicaSets, DaemonSets,
  EndpointSlices, namespace deletion, garbage collection, node lifecycle) and kube-scheduler,
  the same Kubernetes version, and kwok (:mod:`harness.kube.controllers`);
* three kwok nodes in two zones (:data:`NODES`), each with a pod CIDR inside
  :data:`POD_NETWORK`, which a ``local`` route makes bindable in the namespace;
* the tier's kubelet (:mod:`harness.kube.kubelet`) running each bound pod as a process.

Then the objects of a kustomization are applied (integration/kind/manifests: deploy/base as
shipped plus the kind suite's backend Deployment and Service), so the DaemonSet's pod on
:data:`HOST_NODE` runs gproxy-mp with its own arguments and environment, authenticated by a
TokenRequest token of its service account, RBAC as shipped; it listens on the namespace's port
5000 (its hostPort), where :data:`PROXY_ADDRESS` reaches it. Where ``images`` names
``gproxy-mp``, that pod is the image itself, run with podman in the namespace (the tier's
conftest passes the image tests/container builds, wherever podman is installed).

Concurrency: built and torn down from one thread; API calls run on pinned threads.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import utils
from kubernetes.client import AppsV1Api
from kubernetes.client.exceptions import ApiException

from harness.kube import netns, pki, sandbox
from harness.kube.binaries import ensure_binaries, ensure_kwok
from harness.kube.cluster import REQUEST_TIMEOUT, Apis, Kube, raw
from harness.kube.controllers import KWOK_NODE_ANNOTATION, ControllerManager, Kwok, Scheduler
from harness.kube.controlplane import ControlPlane
from harness.kube.kubelet import Kubelet
from harness.kube.manifests import objects
from harness.kube.process import PeerProcess
from harness.kube.workloads import NetProxy
from harness.processes import REPO
from harness.scenarios import BACKEND, BACKEND_NAMESPACE
from harness.scenarios import is_ready as scenarios_ready
from harness.waiting import wait_until

JSON = dict[str, Any]
T = TypeVar("T")
POD_NETWORK = "10.244.0.0/16"
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class Node:
    name: str
    zone: str
    pod_cidr: str


NODES = (
    Node("kwok-node-1", "zone-a", "10.244.1.0/24"),
    Node("kwok-node-2", "zone-a", "10.244.2.0/24"),
    Node("kwok-node-3", "zone-b", "10.244.3.0/24"),
)
HOST_NODE = NODES[0].name
"""The node whose host ports the namespace's ports are: where the proxy pod runs."""
PROXY_ADDRESS = f"{netns.APISERVER_ADDRESS}:5000"
PROXY_NAMESPACE = "gproxy-mp"
PROXY_READY_TIMEOUT = 90.0
"""Seconds from applying the manifests to the DaemonSet's pod Ready: scheduling, the kubelet's
start (a podman container or a process), gproxy-mp's start-up, a readiness probe period (5 s)."""
"""The proxy's hostPort as a client on the host node dials it."""
MANIFESTS = REPO / "integration" / "kind" / "manifests"
CONFIG_MAPS = {"backend-server": MANIFESTS}
"""ConfigMap volumes and the repository directory holding the same files."""
NODE_READY_TIMEOUT = 60.0
BACKEND_SELECTOR = "app.kubernetes.io/name=backend"


@dataclass
class RealCluster:
    """The running cluster; also a :class:`harness.scenarios.Cluster`."""

    plane: ControlPlane
    kube: Kube
    kubelet: Kubelet
    namespace: netns.NetworkNamespace
    directory: Path
    proxy_address: str = PROXY_ADDRESS

    @property
    def command_prefix(self) -> list[str]:
        return self.namespace.command([])

    @property
    def log_dir(self) -> Path:
        return self.directory

    def log_tails(self) -> dict[str, str]:
        return self.plane.log_tails()

    def inside(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a thread inside the namespace (e.g. an HTTP request to a pod)."""
        return self.plane.probe_thread.run(fn)

    def backend_pods(self) -> list[JSON]:
        listed = self.kube.call(lambda a: raw(a.core.list_namespaced_pod(
            BACKEND_NAMESPACE, label_selector=BACKEND_SELECTOR, _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT)))
        items: list[JSON] = listed["items"]
        return items

    def backend_slices(self) -> list[JSON]:
        return list(self.kube.list_slices(BACKEND_NAMESPACE, BACKEND)["items"])

    def scale(self, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        self.kube.call(lambda a: AppsV1Api(a.api_client).patch_namespaced_deployment_scale(
            BACKEND, BACKEND_NAMESPACE, body, _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT))

    def restart(self) -> None:
        """What ``kubectl rollout restart`` does: a new annotation on the pod template."""
        stamp = datetime.datetime.now(datetime.UTC).isoformat()
        body = {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": stamp}}}}}
        self.kube.call(lambda a: AppsV1Api(a.api_client).patch_namespaced_deployment(
            BACKEND, BACKEND_NAMESPACE, body, _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT))

    @contextlib.contextmanager
    def shipped_proxy(self, log_dir: Path, route: str, *args: str) -> Iterator[NetProxy]:
        """One more gproxy-mp beside the DaemonSet's, with one route and ``args``, authenticated
        as the shipped service account (a TokenRequest token; RBAC as deploy/base ships it)."""
        token = self.kube.service_account_token("gproxy-mp", "gproxy-mp")
        kubeconfig = self.kube.with_token(token).write_kubeconfig(log_dir / "proxy.kubeconfig")
        proxy = NetProxy("-p", route, "--workers", "1", "--kubeconfig", str(kubeconfig),
                         "-d", "0s", *args, namespace=self.namespace, log_dir=log_dir)
        try:
            yield proxy
        finally:
            proxy.stop()

    def backend_namespace(self, prefix: str,
                          edit: Callable[[list[JSON]], list[JSON]] | None = None) -> str:
        """A new namespace ``PREFIX-xxxxxx`` holding a copy of the shipped backend (Deployment,
        Service, ConfigMap; changed by ``edit``), for a test that changes or deletes it."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.kube.call(lambda a: a.core.create_namespace(
            {"metadata": {"name": name}}, _request_timeout=REQUEST_TIMEOUT))
        items = backend_copy(name)
        apply(self.kube, edit(items) if edit else items)
        return name

    def ready_pod_nodes(self, namespace: str) -> dict[str, str]:
        """Each Ready pod of ``namespace`` (not being deleted) → its node."""
        listed = self.kube.call(lambda a: raw(a.core.list_namespaced_pod(
            namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)))
        return {p["metadata"]["name"]: p["spec"]["nodeName"]
                for p in listed["items"] if scenarios_ready(p)}

    def hold_unready(self, pod: str, held: bool) -> None:
        """The pod's readiness probe fails while ``held`` (the kubelet reports it)."""
        self.kubelet.hold_unready(BACKEND_NAMESPACE, pod, held)

    def delete_pod(self, name: str) -> None:
        self.kube.call(lambda a: a.core.delete_namespaced_pod(
            name, BACKEND_NAMESPACE, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))


def with_controllers(plane: ControlPlane, kubeconfig: Path, credentials: pki.Credentials,
                     directory: Path) -> None:
    """Add kube-controller-manager, kube-scheduler and kwok to ``plane`` (not started)."""
    binaries = ensure_binaries()
    kwok = ensure_kwok()
    namespace = plane.apiserver.peer.namespace

    def peer(name: str) -> PeerProcess:
        return PeerProcess(name, namespace=namespace, log_path=directory / f"{name}.log")

    plane.controllers = [
        ControllerManager(
            binary=binaries.kube_controller_manager, kubeconfig=kubeconfig,
            service_account_key=credentials.service_account_key,
            ca_cert=credentials.ca_cert, cert_dir=directory / "kcm-certs",
            peer=peer("kube-controller-manager"),
        ),
        Scheduler(binary=binaries.kube_scheduler, kubeconfig=kubeconfig,
                  cert_dir=directory / "scheduler-certs", peer=peer("kube-scheduler")),
        Kwok(binary=kwok, kubeconfig=kubeconfig, peer=peer("kwok")),
    ]  # fmt: skip


def node_body(node: Node) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                       ZONE_LABEL: node.zone, "type": "kwok"},
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
        },
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
    }  # fmt: skip


def create_nodes(kube: Kube) -> None:
    for node in NODES:
        body = node_body(node)
        kube.call(lambda a, body=body: a.core.create_node(  # type: ignore[misc]
            body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
    deadline = time.monotonic() + NODE_READY_TIMEOUT
    while time.monotonic() < deadline:
        listed = kube.call(lambda a: raw(a.core.list_node(
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT)))
        ready = {
            n["metadata"]["name"] for n in listed["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in n.get("status", {}).get("conditions", []))
        }  # fmt: skip
        if ready >= {node.name for node in NODES}:
            return
        time.sleep(0.25)
    raise TimeoutError(f"kwok nodes not Ready after {NODE_READY_TIMEOUT}s")


def apply(kube: Kube, items: list[JSON]) -> None:
    """Create each object (as ``kubectl create``; namespaces that exist are kept)."""

    def create(a: Apis, item: JSON) -> None:
        try:
            utils.create_from_dict(a.api_client, item,
                                   namespace=item["metadata"].get("namespace", "default"))
        except utils.FailToCreateError as error:
            if not all(isinstance(e, ApiException) and e.status == 409
                       for e in error.api_exceptions):
                raise

    for item in items:
        kube.call(lambda a, item=item: create(a, item))  # type: ignore[misc]


def backend_copy(namespace: str) -> list[JSON]:
    """The backend Deployment, Service and ConfigMap of :data:`MANIFESTS`, moved to
    ``namespace`` (for a test that needs a backend of its own to change or delete)."""
    copies = []
    for item in objects(MANIFESTS):
        if item["metadata"].get("namespace") == BACKEND_NAMESPACE:
            moved = copy.deepcopy(item)
            moved["metadata"]["namespace"] = namespace
            copies.append(moved)
    return copies


def spread_over_nodes(items: list[JSON], *, distribution: str | None = None,
                      replicas: int | None = None) -> list[JSON]:
    """``items`` (a :func:`backend_copy`) with the Deployment's pods spread evenly over the
    nodes (a hard topology spread constraint), ``replicas`` of them if given, and the Service's
    ``trafficDistribution`` set if given."""
    for item in items:
        if item["kind"] == "Service" and distribution:
            item["spec"]["trafficDistribution"] = distribution
        if item["kind"] == "Deployment":
            if replicas is not None:
                item["spec"]["replicas"] = replicas
            item["spec"]["template"]["spec"]["topologySpreadConstraints"] = [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": BACKEND}},
            }]  # fmt: skip
    return items


def wait_proxy_ready(cluster: RealCluster) -> None:
    """Until the DaemonSet's pod on :data:`HOST_NODE` is Ready (its /readyz answers), so no
    test meets a proxy still starting (a container takes a few seconds more than a process)."""
    def ready() -> bool:
        return HOST_NODE in cluster.ready_pod_nodes(PROXY_NAMESPACE).values()

    if not wait_until(ready, timeout=PROXY_READY_TIMEOUT, interval=0.2):
        raise RuntimeError(f"the gproxy-mp pod on {HOST_NODE} not Ready after "
                           f"{PROXY_READY_TIMEOUT}s; kubelet errors {cluster.kubelet.errors[:5]}, "
                           f"unrunnable {cluster.kubelet.unrunnable}")


@contextlib.contextmanager
def real_cluster(directory: Path, *, images: Mapping[str, str] | None = None
                 ) -> Iterator[RealCluster]:
    """Everything in the module doc, torn down on exit; ``images`` (image name → local image)
    are run with podman by the kubelet instead of as processes from the checkout."""
    directory.mkdir(parents=True, exist_ok=True)
    with sandbox.network_namespace("cluster", local_routes=[POD_NETWORK]) as namespace:
        credentials = sandbox.build_credentials(directory / "pki")
        with netns.pinned(namespace, "cluster-probe") as probe_thread:
            plane = ControlPlane.build(ensure_binaries(), credentials=credentials,
                                       namespace=namespace, directory=directory,
                                       probe_thread=probe_thread)
            kubeconfig = directory / "admin.kubeconfig"
            kubeconfig.write_text(pki.kubeconfig(
                server=plane.apiserver.url, ca_cert=credentials.ca_cert,
                token=credentials.admin_token, user=pki.ADMIN_USER))
            with_controllers(plane, kubeconfig, credentials, directory)
            try:
                plane.start()
                with Kube.admin(namespace, credentials, url=plane.apiserver.url,
                                thread_name="cluster-admin") as kube:
                    create_nodes(kube)
                    kubelet = Kubelet(kube, namespace, nodes={n.name for n in NODES},
                                      host_node=HOST_NODE, config_maps=CONFIG_MAPS,
                                      log_dir=directory / "pods", images=images)
                    try:
                        apply(kube, objects(MANIFESTS))
                        cluster = RealCluster(plane=plane, kube=kube, kubelet=kubelet,
                                              namespace=namespace, directory=directory)
                        wait_proxy_ready(cluster)
                        yield cluster
                    finally:
                        kubelet.close()
            finally:
                plane.stop()
