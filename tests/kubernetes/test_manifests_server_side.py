"""Every manifest in deploy/ is accepted by the real kube-apiserver (server-side dry-run).

The same check as `kubectl apply --dry-run=server -k deploy/...`: the API server runs defaulting,
validation and admission on each object and stores nothing. Namespaces are created for real
first, because a dry-run of an object in a namespace that does not exist fails with NotFound.

Objects of custom resources are left out: this API server has no CRDs installed, so it would
answer 404 for the kind itself, not for the object. deploy/examples/tls's cert-manager
Certificate is the only one; tests/deploy/test_tls_example.py checks its fields instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import utils
from kubernetes.client.exceptions import ApiException

from harness.kube.cluster import Apis, Kube
from tests.deploy.manifests import all_manifest_objects

pytestmark = pytest.mark.timeout(120)

CUSTOM_API_GROUPS = {"cert-manager.io"}
"""API groups of custom resources the manifests use, which this API server does not serve."""
OBJECTS = [o for o in all_manifest_objects()
           if o["apiVersion"].split("/")[0] not in CUSTOM_API_GROUPS]


def test_only_cert_managers_certificate_is_left_out() -> None:
    left_out = [(o["kind"], o["metadata"]["name"]) for o in all_manifest_objects()
                if o not in OBJECTS]
    assert left_out == [("Certificate", "gproxy-mp-tls")]


def _ensure_namespace(apis: Apis, name: str) -> None:
    try:
        apis.core.create_namespace({"metadata": {"name": name}})
    except ApiException as e:
        if e.status != 409:  # already there from an earlier test of this session
            raise


def _dry_run(apis: Apis, obj: dict[str, Any]) -> list[Any]:
    namespace = obj["metadata"].get("namespace", "default")
    created: list[Any] = utils.create_from_dict(apis.api_client, obj, namespace=namespace,
                                                dry_run="All")
    return created


@pytest.mark.parametrize(
    "obj", OBJECTS,
    ids=[f"{o['kind']}/{o['metadata'].get('namespace', '-')}/{o['metadata']['name']}"
         for o in OBJECTS])
def test_the_api_server_accepts_the_manifest(kube: Kube, obj: dict[str, Any]) -> None:
    if obj["kind"] == "Namespace":
        kube.call(lambda apis: _ensure_namespace(apis, obj["metadata"]["name"]))
        return
    namespace = obj["metadata"].get("namespace")
    if namespace:
        kube.call(lambda apis: _ensure_namespace(apis, namespace))
    try:
        created = kube.call(lambda apis: _dry_run(apis, obj))
    except utils.FailToCreateError as e:
        details = "; ".join(str(getattr(x, "body", x)) for x in e.api_exceptions)
        raise AssertionError(f"the API server refused {obj['kind']} "
                             f"{obj['metadata']['name']}: {details}") from None
    assert created, f"nothing came back for {obj['kind']} {obj['metadata']['name']}"
