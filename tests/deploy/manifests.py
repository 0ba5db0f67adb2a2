"""The Kubernetes objects of deploy/, read the way kustomize reads them, and gproxy-mp's settings
as a container's args and env give them.

Every ``kustomization.yaml`` under deploy/ lists plain files (``resources:`` only, no patches or
generators), so the objects `kubectl apply -k` would send are exactly the YAML documents of
those files: PyYAML is enough, no kustomize binary. The kind suite's overlay
(integration/kind/manifests) is read here for its file list only: its objects are patched and
generated, and `kubectl kustomize` renders them on a machine that runs it.

Pure reads of the working tree; nothing here talks to a cluster. `all_manifest_objects()` is the
list a server-side dry-run applies, Namespaces first.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from gproxy_mp.cli import build_settings, command
from gproxy_mp.config import Settings
from harness.certs import CertificateAuthority

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KIND_OVERLAY = REPO / "integration" / "kind" / "manifests"
KUSTOMIZATION = "kustomization.yaml"
CLUSTER_SCOPED_KINDS = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})
"""The cluster-scoped kinds these manifests use; every other object names its namespace."""
IMAGE_NAME = "gproxy-mp"
TLS_SECRET_KEYS = ("tls.crt", "tls.key", "ca.crt")
"""The files of a cert-manager Secret (type kubernetes.io/tls, plus the issuer's CA): what a
Secret volume of one holds."""

Object = dict[str, Any]


def kustomizations(root: Path = DEPLOY) -> list[Path]:
    """Every kustomization.yaml under `root`, in path order."""
    return sorted(root.rglob(KUSTOMIZATION))


def load_yaml_documents(path: Path) -> list[Object]:
    """The non-empty YAML documents of one file."""
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def read_kustomization(path: Path) -> Object:
    (doc,) = load_yaml_documents(path)
    return doc


def listed_resources(kustomization: Path) -> list[Path]:
    """The `resources:` entries of a kustomization, as paths (files or directories)."""
    entries: list[str] = read_kustomization(kustomization).get("resources", [])
    return [(kustomization.parent / entry).resolve() for entry in entries]


def kustomization_objects(kustomization: Path) -> list[Object]:
    """The objects `kubectl apply -k` sends for one kustomization: its files' documents, and
    those of a directory it lists (deploy/base, under an example that adds to it)."""
    objects = []
    for path in listed_resources(kustomization):
        if path.is_dir():
            objects += kustomization_objects(path / KUSTOMIZATION)
        else:
            objects += load_yaml_documents(path)
    return objects


def generator_files(kustomization: Path) -> list[Path]:
    """Files named by configMapGenerator/secretGenerator `files:` entries (`key=path` allowed)."""
    doc = read_kustomization(kustomization)
    paths = []
    for generator in [*doc.get("configMapGenerator", []), *doc.get("secretGenerator", [])]:
        for entry in generator.get("files", []):
            paths.append((kustomization.parent / entry.split("=", 1)[-1]).resolve())
    return paths


def manifest_files(root: Path = DEPLOY) -> list[Path]:
    """Each file listed by a kustomization under `root`, once, in listing order."""
    seen: dict[Path, None] = {}
    for kustomization in kustomizations(root):
        for path in listed_resources(kustomization):
            if path.is_file():
                seen.setdefault(path)
    return list(seen)


def all_manifest_objects() -> list[Object]:
    """Every object deploy/ defines (deploy/base and deploy/examples/*), as dicts.

    Namespaces come first, then the rest in listing order, so applying them one by one (a
    server-side dry-run included) meets each namespace before the objects inside it. Fresh
    copies: callers may change them.
    """
    objects = [obj for path in manifest_files() for obj in load_yaml_documents(path)]
    objects.sort(key=lambda obj: obj.get("kind") != "Namespace")  # stable: keeps file order
    return copy.deepcopy(objects)


def base_daemonset() -> Object:
    """deploy/base's DaemonSet, the node-level proxy."""
    return find_object(all_manifest_objects(), "DaemonSet", "gproxy-mp")


def find_objects(objects: list[Object], kind: str) -> list[Object]:
    return [obj for obj in objects if obj.get("kind") == kind]


def find_object(objects: list[Object], kind: str, name: str) -> Object:
    matches = [obj for obj in find_objects(objects, kind) if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def proxy_containers(workload: Object) -> Iterator[Object]:
    """The gproxy-mp containers of a workload: regular, init or native-sidecar containers."""
    spec = pod_spec(workload)
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if container["image"].split("/")[-1].split(":")[0].split("@")[0] == IMAGE_NAME:
            yield container


def container_settings(container: Object) -> Settings:
    """gproxy-mp's Settings for this container: its args through the real click command and
    `build_settings`, with its plain `GPROXY_*` env values (and none of this process's).

    Files the args name inside the container's volume mounts exist while the args parse (see
    `mounted_args`), so the start-up checks of TLS files run on real PEM files."""
    env = {e["name"]: e["value"] for e in container.get("env", [])
           if e["name"].startswith("GPROXY_") and "value" in e}
    with mock.patch.dict(os.environ), mounted_args(container) as args:
        for name in [name for name in os.environ if name.startswith("GPROXY_")]:
            del os.environ[name]
        os.environ.update(env)
        with command.make_context("gproxy-mp", args) as ctx:
            params = dict(ctx.params)
        params["log_level"] = params["log_level"].lower()
        params.pop("check", None)  # a mode of the command, not a setting
        return build_settings(**params)


def mounted_paths(container: Object) -> dict[str, str]:
    """Each arg that is a file inside one of the container's volume mounts, with its mount."""
    mounts = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])]
    return {arg: mount for arg in container.get("args", []) for mount in mounts
            if arg.startswith(mount)}


@contextmanager
def mounted_args(container: Object) -> Iterator[list[str]]:
    """The container's args, with every file inside a volume mount moved under a temporary
    root where that mount holds what a cert-manager Secret volume holds (`TLS_SECRET_KEYS`):
    a real CA, and a certificate and key it issued (`harness.certs`). A file the args name
    that such a Secret does not hold stays missing, and its option's check fails."""
    args: list[str] = list(container.get("args", []))
    paths = mounted_paths(container)
    if not paths:
        yield args
        return
    with tempfile.TemporaryDirectory(prefix="gproxy-mounts-") as tmp:
        root = Path(tmp)
        ca = CertificateAuthority(root / "ca")
        leaf = ca.issue("proxy", dns=["gproxy-mp.example"])
        contents = {"tls.crt": leaf.cert.read_bytes(), "tls.key": leaf.key.read_bytes(),
                    "ca.crt": ca.pem()}
        for mount in set(paths.values()):
            directory = root / mount.lstrip("/")
            directory.mkdir(parents=True)
            for key in TLS_SECRET_KEYS:
                (directory / key).write_bytes(contents[key])
        yield [str(root / arg.lstrip("/")) if arg in paths else arg for arg in args]


def port_number(container: Object, port: int | str) -> int:
    """A probe's port (a number, or the name of one of the container's ports) as a number."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(numbers) == 1, f"container {container['name']!r} has no port named {port!r}"
    return int(numbers[0])


def memory_mib(quantity: str) -> float:
    """A Kubernetes memory quantity (binary suffixes, as these manifests use) in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20
