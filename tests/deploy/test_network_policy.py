"""deploy/examples/networkpolicy: deploy/base plus a NetworkPolicy that opens the route's port
to every client and the admin port only to the monitoring namespace (and, implicitly, the
node's kubelet)."""

from __future__ import annotations

from tests.deploy.manifests import (
    DEPLOY,
    KUSTOMIZATION,
    Object,
    container_settings,
    find_object,
    kustomization_objects,
    listed_resources,
    pod_spec,
    proxy_containers,
)

EXAMPLE = DEPLOY / "examples" / "networkpolicy"
OBJECTS = kustomization_objects(EXAMPLE / KUSTOMIZATION)
POLICY = find_object(OBJECTS, "NetworkPolicy", "gproxy-mp")
DAEMONSET = find_object(OBJECTS, "DaemonSet", "gproxy-mp")
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}


def allowed_ports(rule: Object) -> set[int]:
    ports = set()
    for port in rule["ports"]:
        assert port.get("protocol", "TCP") == "TCP", port
        assert isinstance(port["port"], int), f"a number, as the DaemonSet's: {port}"
        ports.add(port["port"])
    return ports


def proxy_ports() -> tuple[set[int], int]:
    """The DaemonSet's route ports (from its -p args) and its admin port (--admin-address)."""
    (container,) = proxy_containers(DAEMONSET)
    settings = container_settings(container)
    assert settings.admin is not None
    return {route.listen.port for route in settings.routes}, settings.admin.port


def test_the_example_is_deploy_base_plus_the_policy() -> None:
    assert listed_resources(EXAMPLE / KUSTOMIZATION) == [
        (DEPLOY / "base").resolve(), (EXAMPLE / "networkpolicy.yaml").resolve()]


def test_the_policy_selects_the_proxy_pods_in_their_namespace() -> None:
    assert POLICY["metadata"]["namespace"] == DAEMONSET["metadata"]["namespace"]
    selector = POLICY["spec"]["podSelector"]["matchLabels"]
    labels = DAEMONSET["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), (selector, labels)
    assert not pod_spec(DAEMONSET).get("hostNetwork"), "policies do not apply to hostNetwork pods"


def test_the_route_port_is_open_to_every_client_and_the_admin_port_to_monitoring_only() -> None:
    routes, admin = proxy_ports()
    assert POLICY["spec"]["policyTypes"] == ["Ingress"]
    open_to_all = set()
    for rule in POLICY["spec"]["ingress"]:
        ports = allowed_ports(rule)
        if "from" not in rule:
            open_to_all |= ports
            continue
        assert ports == {admin}, rule
        assert rule["from"] == [{"namespaceSelector": {"matchLabels": MONITORING}}], rule
    assert open_to_all == routes
    assert admin not in open_to_all


def test_the_policys_ports_are_the_containers_ports() -> None:
    (container,) = proxy_containers(DAEMONSET)
    declared = {p["containerPort"] for p in container["ports"]}
    routes, admin = proxy_ports()
    assert routes | {admin} == declared
