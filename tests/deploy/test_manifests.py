"""Offline checks of deploy/ (and the kind overlay's file list): the manifests parse, are
self-contained, and agree with gproxy-mp's real command line, its shutdown timing, its admin
port and the RBAC grants the README names.

No cluster: the server-side dry-run against the kube-apiserver tier reuses
`tests.deploy.manifests.all_manifest_objects()`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gproxy_mp.config import KubernetesTarget
from tests.deploy.manifests import (
    CLUSTER_SCOPED_KINDS,
    DEPLOY,
    KIND_OVERLAY,
    KUSTOMIZATION,
    REPO,
    Object,
    all_manifest_objects,
    container_settings,
    find_object,
    find_objects,
    generator_files,
    kustomization_objects,
    kustomizations,
    listed_resources,
    load_yaml_documents,
    manifest_files,
    memory_mib,
    pod_spec,
    port_number,
    proxy_containers,
    read_kustomization,
)

OBJECTS = all_manifest_objects()
DAEMONSET = find_object(OBJECTS, "DaemonSet", "gproxy-mp")
WORKLOADS = [*find_objects(OBJECTS, "DaemonSet"), *find_objects(OBJECTS, "Deployment")]
PROXIES = [(w, c) for w in WORKLOADS for c in proxy_containers(w)]
PROXY_IDS = [f"{w['kind']}/{w['metadata']['name']}/{c['name']}" for w, c in PROXIES]
ALL_KUSTOMIZATIONS = [*kustomizations(), KIND_OVERLAY / KUSTOMIZATION]
PLAIN_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources"}
ALL_INTERFACES = ("", "0.0.0.0", "::")

RBAC_RULES = {
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
    ("", "services"): {"get"},
    ("", "endpoints"): {"get", "list", "watch"},
    ("", "nodes"): {"get"},
}
"""What gproxy-mp's Kubernetes resolver reads: README "RBAC", which a test below parses."""
API_GROUPS = {"endpointslices": "discovery.k8s.io", "services": "", "endpoints": "",
              "nodes": ""}
CLUSTER_SCOPED = {("", "nodes")}
"""Grants a namespaced Role cannot hold (the sidecar example's): without them, locality is off
unless --zone is given."""

SUPERVISOR_MIB = 33
"""Measured VmRSS of the supervisor (one route, admin on): /proc/PID/status."""
WORKER_STEADY_MIB = 50
"""Measured VmRSS of one worker after 60,000 small unary calls, 64 in flight (grpcio 1.85)."""
WORKER_PEAK_MIB = 86
"""Measured VmHWM of one worker with 512 calls in flight and some 1 MiB messages."""
SHARED_LIBRARY_MIB = 27
"""Of a worker's RSS, file pages (grpcio, pyzmq, libpython): shared, charged to the cgroup once."""


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", ALL_KUSTOMIZATIONS, ids=rel)
def test_every_file_a_kustomization_lists_exists_and_parses(kustomization: Path) -> None:
    resources = listed_resources(kustomization)
    assert resources, f"{rel(kustomization)} lists no resources"
    for path in resources:
        assert path.exists(), f"{rel(kustomization)} lists {path}, which does not exist"
        if path.is_dir():
            assert (path / KUSTOMIZATION).is_file(), f"{path} has no {KUSTOMIZATION}"
        else:
            assert load_yaml_documents(path), f"{rel(path)} holds no YAML document"
    for path in generator_files(kustomization):
        assert path.is_file(), f"{rel(kustomization)} generates from {path}, which is missing"


@pytest.mark.parametrize("kustomization", kustomizations(), ids=rel)
def test_deploy_kustomizations_list_plain_resources_only(kustomization: Path) -> None:
    """So each file is a complete object as written: what a file-by-file validation sees is
    what `kubectl apply -k` sends."""
    keys = set(read_kustomization(kustomization))
    assert keys - PLAIN_KUSTOMIZATION_KEYS == set(), rel(kustomization)


def test_every_yaml_file_under_deploy_is_listed_by_a_kustomization() -> None:
    listed = set(manifest_files())
    yaml_files = {p.resolve() for p in DEPLOY.rglob("*.yaml") if p.name != KUSTOMIZATION}
    assert yaml_files - listed == set()


def object_id(obj: Object) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


@pytest.mark.parametrize("obj", OBJECTS, ids=object_id)
def test_every_object_has_api_version_kind_and_name(obj: Object) -> None:
    assert isinstance(obj.get("apiVersion"), str) and obj["apiVersion"]
    assert isinstance(obj.get("kind"), str) and obj["kind"]
    assert isinstance(obj.get("metadata", {}).get("name"), str) and obj["metadata"]["name"]


@pytest.mark.parametrize("kustomization", kustomizations(), ids=rel)
def test_namespaced_objects_live_in_a_namespace_their_kustomization_creates(
    kustomization: Path,
) -> None:
    objects = kustomization_objects(kustomization)
    created = {o["metadata"]["name"] for o in find_objects(objects, "Namespace")}
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            assert "namespace" not in obj["metadata"], obj["metadata"]
        else:
            assert obj["metadata"].get("namespace") in created, (
                f"{obj['kind']}/{obj['metadata']['name']} names namespace "
                f"{obj['metadata'].get('namespace')!r}; {rel(kustomization)} creates {created}")


# --- the proxy containers: command line, shutdown, probes, security ---------------------------


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_proxy_args_parse_with_the_real_command_line(workload: Object, container: Object) -> None:
    settings = container_settings(container)

    assert settings.routes
    assert "command" not in container, "the image's ENTRYPOINT (gproxy-mp) must run"


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_grace_period_outlasts_shutdown_delay_plus_drain_timeout(
    workload: Object, container: Object,
) -> None:
    settings = container_settings(container)
    grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)

    assert grace > settings.worker.shutdown_delay + settings.worker.drain_timeout


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_no_prestop_hook_the_shutdown_delay_does_that(workload: Object, container: Object) -> None:
    assert "preStop" not in container.get("lifecycle", {})


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_probes_ask_the_admin_port_from_the_args(workload: Object, container: Object) -> None:
    settings = container_settings(container)
    assert settings.admin is not None, "--admin-address off: nothing answers the probes"
    assert settings.admin.host in ALL_INTERFACES, "the kubelet probes the pod IP, not loopback"
    expected_paths = {"readinessProbe": "/readyz", "livenessProbe": "/healthz",
                      "startupProbe": "/readyz"}

    assert "readinessProbe" in container and "livenessProbe" in container
    for probe_name, path in expected_paths.items():
        if probe_name in container:
            get = container[probe_name]["httpGet"]
            assert get["path"] == path, probe_name
            assert port_number(container, get["port"]) == settings.admin.port, probe_name


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_proxy_runs_non_root_read_only_without_capabilities(
    workload: Object, container: Object,
) -> None:
    security = container["securityContext"]
    pod_security = pod_spec(workload).get("securityContext", {})

    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security.get("runAsUser", pod_security.get("runAsUser")) == 10001, "the image's USER"
    # The bus's private socket directory goes under the temp dir: it must be writable.
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    assert "/tmp" in mounts


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_memory_limit_holds_the_supervisor_and_every_worker_at_peak(
    workload: Object, container: Object,
) -> None:
    """`--workers auto` would count the node's CPUs, not the pod's: the count must be explicit
    in the args, and fit the measured peak RSS under the memory limit."""
    args = container.get("args", [])
    settings = container_settings(container)
    limit = memory_mib(container["resources"]["limits"]["memory"])

    assert "auto" not in [a.lower() for a in args]
    assert SUPERVISOR_MIB + settings.workers * WORKER_PEAK_MIB <= limit
    request = memory_mib(container["resources"]["requests"]["memory"])
    steady = (SUPERVISOR_MIB + SHARED_LIBRARY_MIB
              + settings.workers * (WORKER_STEADY_MIB - SHARED_LIBRARY_MIB))
    assert request >= steady, f"steady use is ~{steady} MiB"


def test_daemonset_serves_its_route_on_the_host_port() -> None:
    (container,) = proxy_containers(DAEMONSET)
    settings = container_settings(container)
    (route,) = settings.routes
    ports = {p["name"]: p for p in container["ports"]}

    assert route.listen.host in ALL_INTERFACES
    assert ports["grpc"]["containerPort"] == route.listen.port
    assert ports["grpc"]["hostPort"] == route.listen.port
    assert "hostNetwork" not in pod_spec(DAEMONSET), "hostPort mode: the pod keeps its netns"
    rolling = DAEMONSET["spec"]["updateStrategy"]["rollingUpdate"]
    assert rolling["maxSurge"] == 0, "the old pod holds the hostPort until it exits"


def test_daemonset_resources_follow_the_benchmark_sizing() -> None:
    (container,) = proxy_containers(DAEMONSET)
    resources = container["resources"]

    assert resources["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert resources["limits"] == {"memory": "512Mi"}, "no CPU limit: throttling adds latency"


def test_daemonset_grace_period_is_45s_against_the_default_5s_plus_25s() -> None:
    (container,) = proxy_containers(DAEMONSET)
    settings = container_settings(container)

    assert (settings.worker.shutdown_delay, settings.worker.drain_timeout) == (5.0, 25.0)
    assert pod_spec(DAEMONSET)["terminationGracePeriodSeconds"] == 45


# --- RBAC ----------------------------------------------------------------------------------------


def readme_rbac_grants() -> dict[tuple[str, str], set[str]]:
    """The grants README's "RBAC" paragraph names, e.g. "`get, list, watch` on `endpoints`"."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = text[text.index("**RBAC.**"):].split("\n\n", 1)[0]
    grants = {}
    for verbs, resource in re.findall(r"`([a-z, ]+)` on `([a-z]+)`", paragraph):
        group = API_GROUPS[resource]
        if group:
            assert f"`{group}`" in paragraph, f"README names no API group {group} for {resource}"
        grants[(group, resource)] = {v.strip() for v in verbs.split(",")}
    return grants


def deploy_readme_rbac_grants() -> dict[tuple[str, str], set[str]]:
    """The grants deploy/README's "RBAC" paragraph names, e.g. "`get` on `nodes`" or
    "`get, list, watch` on `endpointslices.discovery.k8s.io`"."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    paragraph = text[text.index("**RBAC.**"):].split("\n\n", 1)[0]
    return {(group, resource): {v.strip() for v in verbs.split(",")}
            for verbs, resource, group in re.findall(
                r"`([a-z, ]+)`\s+on\s+`([a-z]+)(?:\.([a-z0-9.]+))?`", paragraph)}


def rule_table(role: Object) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def test_the_readme_names_the_grants_these_manifests_hold() -> None:
    assert readme_rbac_grants() == RBAC_RULES


def test_the_deploy_readme_names_the_same_grants() -> None:
    assert deploy_readme_rbac_grants() == RBAC_RULES


ROLES = [*find_objects(OBJECTS, "ClusterRole"), *find_objects(OBJECTS, "Role")]


@pytest.mark.parametrize("role", ROLES, ids=object_id)
def test_roles_grant_exactly_the_verbs_the_readme_names(role: Object) -> None:
    grants = readme_rbac_grants()
    if role["kind"] == "Role":
        grants = {k: v for k, v in grants.items() if k not in CLUSTER_SCOPED}
    assert rule_table(role) == grants


@pytest.mark.parametrize(("workload", "container"), PROXIES, ids=PROXY_IDS)
def test_the_proxys_service_account_is_bound_to_those_rules(
    workload: Object, container: Object,
) -> None:
    namespace = workload["metadata"]["namespace"]
    account = pod_spec(workload)["serviceAccountName"]
    find_object([o for o in OBJECTS if o["metadata"].get("namespace") == namespace],
                "ServiceAccount", account)
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    bindings = [b for b in [*find_objects(OBJECTS, "ClusterRoleBinding"),
                            *find_objects(OBJECTS, "RoleBinding")]
                if subject in b["subjects"]]

    assert bindings, f"no binding names ServiceAccount {namespace}/{account}"
    for binding in bindings:
        ref = binding["roleRef"]
        role_namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        (role,) = [r for r in ROLES if r["kind"] == ref["kind"]
                   and r["metadata"]["name"] == ref["name"]
                   and r["metadata"].get("namespace") == role_namespace]
        expected = RBAC_RULES if ref["kind"] == "ClusterRole" else {
            k: v for k, v in RBAC_RULES.items() if k not in CLUSTER_SCOPED}
        assert rule_table(role) == expected


# --- the kind overlay -----------------------------------------------------------------------------


def test_the_kind_backend_service_is_what_the_daemonset_targets() -> None:
    (container,) = proxy_containers(DAEMONSET)
    (route,) = container_settings(container).routes
    target = route.target
    backend = find_object(load_yaml_documents(KIND_OVERLAY / "backend.yaml"), "Service", "backend")

    assert isinstance(target, KubernetesTarget)
    assert (target.service, target.namespace) == (backend["metadata"]["name"],
                                                  backend["metadata"]["namespace"])
    assert target.port in {p["name"] for p in backend["spec"]["ports"]}
