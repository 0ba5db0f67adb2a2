"""What the tier's kubelet reads from a pod: how to run its container, probe it, and its state.

Pure functions of the pod's JSON (as the API server returns it) and of the few facts the
kubelet knows about the machine; no I/O. :mod:`harness.kube.kubelet` does the rest.

How a container becomes a process here (where the kubelet does not run its image with podman:
``Launch.image``, ``args`` and ``entrypoint`` are what it needs for that):

* its image's entrypoint comes from :data:`IMAGES` (``gproxy-mp`` → ``python -m gproxy_mp``,
  the image's ENTRYPOINT); a ``command`` whose first word is ``python`` runs this interpreter;
* a file path inside a ConfigMap volume mount (``/backend/backend_server.py``) is mapped to a
  directory of the repository that holds the same files (``config_maps``);
* ``env`` values and downward-API ``fieldRef``s are resolved; every process also gets
  ``GPROXY_KUBECONFIG`` pointing at a kubeconfig with a token for the pod's service account
  (what the projected service-account volume gives a real pod; gproxy-mp reads ``GPROXY_*``
  variables as options);
* the process runs in the tier's one network namespace, so it can bind its pod IP (a local
  route makes every pod CIDR address local); a hostPort is the namespace's port, so only the
  pods of one node (the *host node*) may hold one.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

JSON = dict[str, Any]

IMAGES = {"gproxy-mp": (sys.executable, "-m", "gproxy_mp")}
"""Image name (without tag) → the argv of its ENTRYPOINT."""


class Unrunnable(Exception):
    """The kubelet cannot run this container (reason in the message)."""


@dataclass(frozen=True)
class Probe:
    kind: str  # "grpc", "http", "tcp"
    port: int
    path: str = ""
    service: str = ""
    period: float = 10.0
    initial_delay: float = 0.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    probe: Probe | None
    grace: float
    image: str = ""
    """The container's image, as the pod names it."""
    args: tuple[str, ...] = ()
    """The container's ``args`` (mapped as in ``argv``): what a container of the image gets
    after its own ENTRYPOINT, where the kubelet runs the image itself."""
    entrypoint: bool = False
    """Whether the image's own ENTRYPOINT runs (no ``command`` replaces it)."""


def image_name(image: str) -> str:
    """``registry/gproxy-mp:0.1.0@sha256:...`` → ``gproxy-mp``."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def field_ref(pod: JSON, path: str) -> str:
    """The downward API's value for ``fieldPath``."""
    value: Any = pod
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise Unrunnable(f"downward API field {path} is not set")
        value = value[part]
    return str(value)


def _port(container: JSON, port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise Unrunnable(f"probe port {port!r} is not a port of container {container['name']}")


def probe_of(container: JSON) -> Probe | None:
    spec = container.get("readinessProbe")
    if not spec:
        return None
    if "grpc" in spec:
        probe = Probe("grpc", int(spec["grpc"]["port"]), service=spec["grpc"].get("service", ""))
    elif "httpGet" in spec:
        get = spec["httpGet"]
        probe = Probe("http", _port(container, get["port"]), path=get.get("path", "/"))
    elif "tcpSocket" in spec:
        probe = Probe("tcp", _port(container, spec["tcpSocket"]["port"]))
    else:
        raise Unrunnable(f"readiness probe {sorted(spec)} is not supported here")
    return dataclasses.replace(
        probe,
        period=float(spec.get("periodSeconds", 10)),
        initial_delay=float(spec.get("initialDelaySeconds", 0)),
        failure_threshold=int(spec.get("failureThreshold", 3)),
        success_threshold=int(spec.get("successThreshold", 1)),
    )


def _mapped(word: str, pod: JSON, container: JSON, config_maps: Mapping[str, Path]) -> str:
    """``word`` with a path inside a ConfigMap mount replaced by its directory here."""
    path = PurePosixPath(word)
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        mount_path = PurePosixPath(mount["mountPath"])
        if path.is_relative_to(mount_path):
            config_map = volumes.get(mount["name"], {}).get("configMap", {}).get("name", "")
            directory = config_maps.get(config_map)
            if directory is None:
                raise Unrunnable(f"volume {mount['name']} is not a known ConfigMap")
            return str(directory / path.relative_to(mount_path))
    return word


def argv_of(pod: JSON, container: JSON, config_maps: Mapping[str, Path]) -> tuple[str, ...]:
    command = container.get("command")
    if command:
        if command[0] not in ("python", "python3"):
            raise Unrunnable(f"command {command[0]!r} is not runnable here")
        head: tuple[str, ...] = (sys.executable,)
        rest = [*command[1:], *container.get("args", [])]
    else:
        entrypoint = IMAGES.get(image_name(container["image"]))
        if entrypoint is None:
            raise Unrunnable(f"image {container['image']} is not runnable here")
        head, rest = entrypoint, list(container.get("args", []))
    return (*head, *(_mapped(word, pod, container, config_maps) for word in rest))


def args_of(pod: JSON, container: JSON, config_maps: Mapping[str, Path]) -> tuple[str, ...]:
    return tuple(_mapped(word, pod, container, config_maps) for word in container.get("args", []))


def env_of(pod: JSON, container: JSON) -> dict[str, str]:
    env: dict[str, str] = {}
    for variable in container.get("env", []):
        source = variable.get("valueFrom")
        if source is None:
            env[variable["name"]] = variable.get("value", "")
        elif "fieldRef" in source:
            env[variable["name"]] = field_ref(pod, source["fieldRef"]["fieldPath"])
        else:
            raise Unrunnable(f"env {variable['name']}: only value and fieldRef are supported")
    return env


def host_ports(pod: JSON) -> set[int]:
    return {
        int(port["hostPort"])
        for container in pod["spec"]["containers"]
        for port in container.get("ports", [])
        if port.get("hostPort")
    }


def launch(pod: JSON, config_maps: Mapping[str, Path]) -> Launch:
    """How to run ``pod``'s one container; :class:`Unrunnable` when it cannot run here."""
    containers = pod["spec"]["containers"]
    if len(containers) != 1 or pod["spec"].get("initContainers"):
        raise Unrunnable("only pods with exactly one container and no init containers run here")
    container = containers[0]
    return Launch(
        argv=argv_of(pod, container, config_maps),
        env=env_of(pod, container),
        probe=probe_of(container),
        grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)),
        image=container["image"],
        args=args_of(pod, container, config_maps),
        entrypoint=not container.get("command"),
    )


def pod_key(pod: JSON) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def deleting(pod: JSON) -> bool:
    return "deletionTimestamp" in pod["metadata"]


def deletion_grace(pod: JSON) -> float:
    return float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)


def startable(pod: JSON) -> bool:
    """Bound, given its IP by kwok, Running, and not being deleted."""
    status = pod.get("status", {})
    return (
        not deleting(pod)
        and status.get("phase") == "Running"
        and bool(status.get("podIP"))
    )


def ready_condition(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def readiness_patch(pod: JSON, *, ready: bool, message: str, now: str) -> JSON:
    """The status patch (strategic merge) a kubelet sends when the container's readiness
    changes: the Ready and ContainersReady conditions and the container's ``ready``."""
    status = "True" if ready else "False"
    reason = {} if ready else {"reason": "ContainersNotReady", "message": message[:200]}
    conditions = [
        {"type": kind, "status": status, "lastTransitionTime": now, **reason}
        for kind in ("Ready", "ContainersReady")
    ]
    containers = [
        {"name": c["name"], "ready": ready} for c in pod["spec"]["containers"]
    ]
    return {"status": {"conditions": conditions, "containerStatuses": containers}}
