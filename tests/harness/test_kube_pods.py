"""The real-cluster tier's kubelet reads pods right: pure functions over plain pod JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from harness.kube import pods
from harness.kube.probes import health_status

BACKEND: dict[str, Any] = {
    "metadata": {"name": "backend-1", "namespace": "default", "uid": "u1"},
    "spec": {
        "nodeName": "kwok-node-1",
        "terminationGracePeriodSeconds": 30,
        "volumes": [{"name": "code", "configMap": {"name": "backend-server"}}],
        "containers": [{
            "name": "backend", "image": "gproxy-mp:e2e",
            "command": ["python", "/backend/backend_server.py"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "PORT", "value": "50051"}],
            "ports": [{"name": "grpc", "containerPort": 50051}],
            "readinessProbe": {"grpc": {"port": 50051}, "periodSeconds": 1,
                               "failureThreshold": 1},
            "volumeMounts": [{"name": "code", "mountPath": "/backend"}],
        }],
    },
    "status": {"phase": "Running", "podIP": "10.244.1.2"},
}  # fmt: skip
PROXY: dict[str, Any] = {
    "metadata": {"name": "gproxy-mp-x", "namespace": "gproxy-mp", "uid": "u2"},
    "spec": {
        "nodeName": "kwok-node-2",
        "containers": [{
            "name": "gproxy-mp", "image": "registry.example/gproxy-mp:0.1.0",
            "args": ["-p", ":5000-kubernetes:///backend.default:grpc"],
            "env": [{"name": "GPROXY_NODE_NAME",
                     "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "ports": [{"name": "grpc", "containerPort": 5000, "hostPort": 5000},
                      {"name": "admin", "containerPort": 9901}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}},
        }],
    },
    "status": {"phase": "Running", "podIP": "10.244.2.1"},
}  # fmt: skip
CONFIG_MAPS = {"backend-server": Path("/repo/manifests")}


def test_a_python_command_runs_this_interpreter_with_config_map_paths_mapped() -> None:
    launch = pods.launch(BACKEND, CONFIG_MAPS)

    assert launch.argv == (sys.executable, "/repo/manifests/backend_server.py")
    assert not launch.entrypoint
    assert launch.env == {"POD_NAME": "backend-1", "POD_IP": "10.244.1.2", "PORT": "50051"}
    assert launch.probe == pods.Probe("grpc", 50051, period=1.0, failure_threshold=1)
    assert launch.grace == 30.0


def test_an_image_runs_its_entrypoint_and_a_named_probe_port_resolves() -> None:
    launch = pods.launch(PROXY, CONFIG_MAPS)

    assert launch.argv == (sys.executable, "-m", "gproxy_mp", "-p",
                           ":5000-kubernetes:///backend.default:grpc")
    assert (launch.image, launch.args) == (  # what the kubelet gives podman instead
        "registry.example/gproxy-mp:0.1.0", ("-p", ":5000-kubernetes:///backend.default:grpc"))
    assert launch.entrypoint
    assert launch.env == {"GPROXY_NODE_NAME": "kwok-node-2"}
    assert launch.probe == pods.Probe("http", 9901, path="/readyz")
    assert pods.host_ports(PROXY) == {5000}
    assert pods.host_ports(BACKEND) == set()


@pytest.mark.parametrize(("change", "reason"), [
    ({"image": "nginx:1.27"}, "image nginx:1.27"),
    ({"command": ["/bin/sh", "-c", "x"]}, "command '/bin/sh'"),
    ({"readinessProbe": {"exec": {"command": ["true"]}}}, "readiness probe ['exec']"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     "only value and fieldRef"),
])  # fmt: skip
def test_what_cannot_run_here_says_why(change: dict[str, Any], reason: str) -> None:
    container = {**PROXY["spec"]["containers"][0], **change}
    pod = {**PROXY, "spec": {**PROXY["spec"], "containers": [container]}}

    with pytest.raises(pods.Unrunnable, match=reason.replace("[", r"\[").replace("]", r"\]")):
        pods.launch(pod, CONFIG_MAPS)


def test_a_pod_is_startable_once_running_with_an_ip_and_not_deleted() -> None:
    assert pods.startable(BACKEND)
    assert not pods.startable({**BACKEND, "status": {"phase": "Pending"}})
    deleted = {**BACKEND, "metadata": {**BACKEND["metadata"], "deletionTimestamp": "t",
                                       "deletionGracePeriodSeconds": 30}}
    assert not pods.startable(deleted)
    assert pods.deletion_grace(deleted) == 30.0


def test_the_readiness_patch_sets_both_conditions_and_the_container() -> None:
    patch = pods.readiness_patch(BACKEND, ready=False, message="refused", now="T")

    assert patch == {"status": {
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "T",
             "reason": "ContainersNotReady", "message": "refused"},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": "T",
             "reason": "ContainersNotReady", "message": "refused"},
        ],
        "containerStatuses": [{"name": "backend", "ready": False}],
    }}  # fmt: skip


@pytest.mark.parametrize(("reply", "status"), [
    (b"\x00\x00\x00\x00\x02\x08\x01", 1),
    (b"\x00\x00\x00\x00\x02\x08\x02", 2),
    (b"\x00\x00\x00\x00\x00", 0),
    (b"\x01\x00\x00\x00\x02\x08\x01", None),
    (b"", None),
])  # fmt: skip
def test_the_grpc_probe_reads_the_health_status(reply: bytes, status: int | None) -> None:
    assert health_status(reply) == status
