"""The real-cluster tier's kubelet: a real process for every pod bound to a kwok node.

kwok gives a bound pod its IP and phase Running (``kwok_stages.yaml``); this class does what a
kubelet does after that, for the pods of the tier's nodes:

* **start**: the pod's one container as a process (:func:`harness.kube.pods.launch`) in the
  network namespace, with its stdout and stderr in ``log_dir/NAMESPACE_NAME.log``; or, for an
  image named in ``images`` (``gproxy-mp`` → the image tests/container builds) whose pod does
  not replace its ENTRYPOINT with a ``command`` (the backends do), that image run
  with podman (:mod:`harness.container`: as deploy/ runs it, uid 10001, read-only root) in the
  same network namespace, its kubeconfig and CA bind-mounted read-only, so the tier runs the
  proxy as deployed. SIGTERM reaches it through podman's signal proxy; after a SIGKILL of
  podman the container is removed by the name the kubelet gave it;
* **readiness**: its readinessProbe (grpc, httpGet or tcpSocket, at its period and thresholds)
  run from a pinned thread; each change is patched into the pod's Ready and ContainersReady
  conditions. Without a probe the pod is Ready once started. So Ready means "answers";
* **restart**: a process that exits while its pod lives is started again after a second
  (restartPolicy Always), not Ready meanwhile;
* **deletion**: when the pod gets a deletionTimestamp, SIGTERM to the process group, SIGKILL
  once the pod's grace period is over, and only after the process has gone, the pod object is
  deleted (grace 0, uid precondition), as the kubelet confirms a deletion. Until then the
  EndpointSlice controller shows the endpoint as terminating;
* pods it cannot run (an unknown image, a hostPort on another node than the host node, see
  :mod:`harness.kube.pods`) stay Running and not Ready, with the reason in ``unrunnable``; their
  deletion is confirmed at once.

Tests may also flip a running pod's readiness by hand (:meth:`Kubelet.hold_unready`), which a
readiness probe failing would do.

Concurrency: a :class:`PodWatch` thread (pinned) keeps the pod cache; one pinned loop thread
does everything else (starts, probes, API writes); tests call the public methods from their own
thread, which only read or set plain fields under the lock.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from harness import container as runtime
from harness.kube import pods, probes
from harness.kube.cluster import REQUEST_TIMEOUT, Apis, Kube, raw
from harness.kube.netns import NETNS_DIR, NetworkNamespace, PinnedThread

JSON = dict[str, Any]
T = TypeVar("T")
LOOP_INTERVAL = 0.05
"""Seconds between two passes over the pods."""
RESTART_DELAY = 1.0
"""Seconds before a process that exited is started again."""
WATCH_SECONDS = 60
"""Server-side timeout of one pod watch; the watch is then renewed from its last version."""
TOKEN_SECONDS = 3600


@dataclass
class Container:
    """One pod's process and what the kubelet knows about it."""

    pod: JSON
    launch: pods.Launch
    env: Mapping[str, str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    exited_at: float | None = None
    ready: bool = False
    reported: bool | None = None
    """The readiness last written to the API (None: nothing written yet)."""
    message: str = "not probed yet"
    successes: int = 0
    failures: int = 0
    next_probe: float = 0.0
    kill_at: float | None = None
    """Set once SIGTERM was sent: when SIGKILL follows."""
    terminating_at: float | None = None
    """When the kubelet saw the deletion and sent SIGTERM (monotonic)."""
    held_unready: bool = False
    history: list[tuple[float, bool]] = field(default_factory=list)
    podman_name: str | None = None
    """The container podman runs for it now, where its image runs as a container."""

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def ip(self) -> str:
        return str(self.pod["status"]["podIP"])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)
        if signum == signal.SIGKILL and self.podman_name is not None:
            runtime.remove(self.podman_name)  # a killed podman leaves its container running


class PodWatch:
    """All pods of the cluster, kept current by a list then watches (re-listed on any error)."""

    def __init__(self, kube: Kube, thread: PinnedThread) -> None:
        self._kube = kube.with_token(kube.token, thread)
        self._lock = threading.Lock()
        self._pods: dict[str, JSON] = {}
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self.errors: list[str] = []
        self._future = thread.submit(self._run)

    def snapshot(self) -> dict[str, JSON]:
        with self._lock:
            return dict(self._pods)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                while not self._stop.is_set():
                    version = self._watch_from(version)
            except Exception as error:  # re-list, as an informer does; kept for the report
                if self._stop.is_set():
                    return
                self.errors.append(repr(error))
                time.sleep(0.5)

    def _list(self) -> str:
        # Already on the pinned thread: call the API directly (Kube.call would wait on itself).
        listed = raw(self._kube.apis.core.list_pod_for_all_namespaces(
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        with self._lock:
            self._pods = {pod["metadata"]["uid"]: pod for pod in listed["items"]}
        return str(listed["metadata"]["resourceVersion"])

    def _watch_from(self, version: str) -> str:
        for event in self._watch.stream(
            self._kube.apis.core.list_pod_for_all_namespaces,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(REQUEST_TIMEOUT[0], WATCH_SECONDS + 10),
        ):
            pod = event["raw_object"]
            if event["type"] == "ERROR":
                raise RuntimeError(f"watch error: {pod}")
            version = pod["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            with self._lock:
                if event["type"] == "DELETED":
                    self._pods.pop(pod["metadata"]["uid"], None)
                else:
                    self._pods[pod["metadata"]["uid"]] = pod
        return version

    def close(self) -> None:
        self._stop.set()
        self._watch.stop()
        with contextlib.suppress(Exception):
            self._future.result(timeout=WATCH_SECONDS + 15)


class Kubelet:
    """Runs the pods bound to ``nodes`` (see the module doc); :meth:`close` stops them all."""

    def __init__(
        self,
        kube: Kube,
        namespace: NetworkNamespace,
        *,
        nodes: set[str],
        host_node: str,
        config_maps: Mapping[str, Path],
        log_dir: Path,
        images: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.images = dict(images or {})
        """Image name (as `pods.image_name` reads it) → local image podman runs for it."""
        self.nodes = nodes
        self.host_node = host_node
        self.config_maps = config_maps
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.containers: dict[str, Container] = {}
        self.ever: dict[str, Container] = {}
        """Every container this kubelet started, by ``namespace/name``, kept after its pod went
        (for the times in its ``history`` and ``terminating_at``)."""
        self.unrunnable: dict[str, str] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch_thread = namespace.pinned_thread("kubelet-watch")
        self._loop_thread = namespace.pinned_thread("kubelet")
        self._kube = kube.with_token(kube.token, self._loop_thread)
        self.pods = PodWatch(kube, self._watch_thread)
        self._future = self._loop_thread.submit(self._loop)

    # --- what tests use ---------------------------------------------------------------------

    def container(self, namespace: str, name: str) -> Container | None:
        with self._lock:
            for container in self.containers.values():
                meta = container.pod["metadata"]
                if (meta["namespace"], meta["name"]) == (namespace, name):
                    return container
        return None

    def ready_since(self, namespace: str, name: str) -> float | None:
        """When the pod (running or gone) was first reported Ready (monotonic)."""
        with self._lock:
            container = self.ever.get(f"{namespace}/{name}")
            history = list(container.history) if container else []
        return next((at for at, ready in history if ready), None)

    def terminating_since(self, namespace: str, name: str) -> float | None:
        with self._lock:
            container = self.ever.get(f"{namespace}/{name}")
        return container.terminating_at if container else None

    def hold_unready(self, namespace: str, name: str, held: bool) -> None:
        """Make the pod's readiness probe fail (``held``) or count again (not held)."""
        container = self.container(namespace, name)
        if container is None:
            raise LookupError(f"no running pod {namespace}/{name}")
        with self._lock:
            container.held_unready = held

    def check(self) -> None:
        """Raise if the kubelet's loop died or met an error it could not handle."""
        if self._future.done():
            self._future.result()
            raise RuntimeError("the kubelet loop returned")
        if self.errors:
            raise RuntimeError(f"kubelet errors: {self.errors[:5]}")

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._future.result(timeout=30)
        for container in list(self.containers.values()):
            self._kill(container)
        self.pods.close()
        self._loop_thread.close()
        self._watch_thread.close()

    # --- the loop -----------------------------------------------------------------------------

    def _api(self, fn: Callable[[Apis], T]) -> T:
        """``fn(apis)`` right here: the loop already runs on its pinned thread (``Kube.call``
        would queue behind itself)."""
        return fn(self._kube.apis)

    def _loop(self) -> None:
        while not self._stop.is_set():
            seen = self.pods.snapshot()
            for uid in [uid for uid in self.containers if uid not in seen]:
                self._kill(self.containers.pop(uid))  # force-deleted: the process goes too
            for uid, pod in seen.items():
                if pod["spec"].get("nodeName") not in self.nodes:
                    continue
                try:
                    self._sync(uid, pod)
                except ApiException as error:
                    if error.status not in (404, 409):  # gone meanwhile, or a newer version
                        self.errors.append(f"{pods.pod_key(pod)}: {error.status} {error.reason}: "
                                           f"{str(error.body)[:300]}")
                except Exception as error:
                    self.errors.append(f"{pods.pod_key(pod)}: {error!r}")
            time.sleep(LOOP_INTERVAL)

    def _sync(self, uid: str, pod: JSON) -> None:
        container = self.containers.get(uid)
        if container is not None:
            container.pod = pod
        if pods.deleting(pod):
            self._terminate(uid, pod, container)
        elif container is None:
            if pods.startable(pod) and uid not in self.unrunnable:
                self._start(uid, pod)
        else:
            self._tend(container)

    def _start(self, uid: str, pod: JSON) -> None:
        try:
            if pods.host_ports(pod) and pod["spec"]["nodeName"] != self.host_node:
                raise pods.Unrunnable(
                    f"hostPort {sorted(pods.host_ports(pod))}: the nodes share one network, "
                    f"only pods of {self.host_node} may hold a host port"
                )
            launch = pods.launch(pod, self.config_maps)
        except pods.Unrunnable as error:
            self.unrunnable[uid] = str(error)
            return
        env = dict(launch.env)
        account = pod["spec"].get("serviceAccountName")
        if account and pod["spec"].get("automountServiceAccountToken", True):
            env["GPROXY_KUBECONFIG"] = str(self._kubeconfig(pod, account))
        container = Container(pod=pod, launch=launch, env=env)
        with self._lock:
            self.containers[uid] = container
            self.ever[pods.pod_key(pod)] = container
        self._spawn(container)

    def _spawn(self, container: Container) -> None:
        meta = container.pod["metadata"]
        log = self.log_dir / f"{meta['namespace']}_{meta['name']}.log"
        local_image = self.images.get(pods.image_name(container.launch.image))
        if local_image is None or not container.launch.entrypoint:  # a command: from the checkout
            argv = self.namespace.command(list(container.launch.argv))
            env = {**os.environ, **container.env}
        else:
            container.podman_name = f"gproxy-mp-pod-{secrets.token_hex(4)}"
            kubeconfig = container.env.get("GPROXY_KUBECONFIG")
            argv = runtime.run_argv(
                local_image, container.launch.args, name=container.podman_name,
                network=f"ns:{NETNS_DIR / self.namespace.name}", env=container.env,
                read_only_files=[Path(kubeconfig), self._kube.ca_cert] if kubeconfig else [])
            env = runtime.podman_env()
        with log.open("ab") as out:
            container.process = subprocess.Popen(
                argv,
                env=env,
                cwd=self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        container.started = time.monotonic()
        container.exited_at = None
        probe = container.launch.probe
        container.next_probe = container.started + (probe.initial_delay if probe else 0.0)

    def _kubeconfig(self, pod: JSON, account: str) -> Path:
        """A kubeconfig with a token for the pod's service account, bound to the pod."""
        meta = pod["metadata"]
        body = {"spec": {
            "audiences": [], "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"],
                               "uid": meta["uid"]},
        }}  # fmt: skip
        path = self.log_dir / f"{meta['namespace']}_{meta['name']}.kubeconfig"
        token: str = self._api(lambda a: raw(
            a.core.create_namespaced_service_account_token(
                account, meta["namespace"], body, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT)))["status"]["token"]
        return self._kube.with_token(token).write_kubeconfig(path, user=account)

    def _tend(self, container: Container) -> None:
        now = time.monotonic()
        if not container.alive():
            if container.exited_at is None:
                container.exited_at = now
                code = container.process.returncode if container.process else None
                self._set_ready(container, False, f"exited with {code}")
            elif now - container.exited_at >= RESTART_DELAY:
                self._spawn(container)
            return
        self._probe(container, now)

    def _probe(self, container: Container, now: float) -> None:
        probe = container.launch.probe
        if now < container.next_probe:
            return
        if probe is None:
            failure = None
            container.next_probe = float("inf")
        else:
            container.next_probe = now + probe.period
            failure = self._run_probe(probe, container.ip)
        if container.held_unready:
            failure = "held unready by the test"
        if failure is None:
            container.successes += 1
            container.failures = 0
            threshold = probe.success_threshold if probe else 1
            if container.successes >= threshold:
                self._set_ready(container, True, "")
        else:
            container.failures += 1
            container.successes = 0
            threshold = probe.failure_threshold if probe else 1
            if container.failures >= threshold or not container.ready:
                self._set_ready(container, False, failure)
        if probe is None and container.held_unready:
            container.next_probe = now + 1.0

    @staticmethod
    def _run_probe(probe: pods.Probe, host: str) -> str | None:
        if probe.kind == "grpc":
            return probes.grpc_probe(host, probe.port, service=probe.service)
        if probe.kind == "http":
            return probes.http_probe(host, probe.port, probe.path)
        return probes.tcp_probe(host, probe.port)

    def _set_ready(self, container: Container, ready: bool, message: str) -> None:
        container.ready = ready
        container.message = message
        if container.reported == ready:
            return
        meta = container.pod["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = pods.readiness_patch(container.pod, ready=ready, message=message, now=now)
        self._api(lambda a: a.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], patch, _preload_content=False,
            _content_type="application/strategic-merge-patch+json",
            _request_timeout=REQUEST_TIMEOUT))
        container.reported = ready
        container.history.append((time.monotonic(), ready))

    def _terminate(self, uid: str, pod: JSON, container: Container | None) -> None:
        now = time.monotonic()
        if container is not None and container.alive():
            if container.kill_at is None:
                container.kill_at = now + pods.deletion_grace(pod)
                container.terminating_at = now
                container.signal(signal.SIGTERM)
            elif now >= container.kill_at:
                container.signal(signal.SIGKILL)
            else:
                self._probe(container, now)  # readiness still reported while it drains
            return
        if container is not None and container.process is not None:
            container.process.wait()
        self._confirm_deletion(pod)
        with self._lock:
            self.containers.pop(uid, None)
        self.unrunnable.pop(uid, None)

    def _confirm_deletion(self, pod: JSON) -> None:
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}

        def delete(a: Apis) -> None:
            try:
                a.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body,
                                             _preload_content=False,
                                             _request_timeout=REQUEST_TIMEOUT)
            except ApiException as error:
                if error.status not in (404, 409):
                    raise

        self._api(delete)

    def _kill(self, container: Container) -> None:
        container.signal(signal.SIGTERM)
        if container.process is not None:
            try:
                container.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                container.signal(signal.SIGKILL)
                container.process.wait(timeout=10)
        if container.podman_name is not None:
            runtime.remove(container.podman_name)


@contextlib.contextmanager
def running(kube: Kube, namespace: NetworkNamespace, **options: Any) -> Iterator[Kubelet]:
    kubelet = Kubelet(kube, namespace, **options)
    try:
        yield kubelet
    finally:
        kubelet.close()

