"""deploy/examples/tls: the certificate cert-manager keeps current reaches the proxy's TLS
options as files of a Secret volume the kubelet updates in place.

YAML-level checks of the Certificate: the test API server (tests/kubernetes) does not have
cert-manager's CRDs, so its server-side dry run leaves Certificates out and these tests check
the fields gproxy-mp relies on instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gproxy_mp.errors import ConfigError
from tests.deploy.manifests import (
    DEPLOY,
    TLS_SECRET_KEYS,
    Object,
    container_settings,
    find_object,
    find_objects,
    listed_resources,
    load_yaml_documents,
    mounted_args,
    pod_spec,
    proxy_containers,
)

EXAMPLE = DEPLOY / "examples" / "tls"
OBJECTS = [o for p in listed_resources(EXAMPLE / "kustomization.yaml")
           for o in load_yaml_documents(p)]
DAEMONSET = find_object(OBJECTS, "DaemonSet", "gproxy-mp-tls")
(CONTAINER,) = proxy_containers(DAEMONSET)
FILE_OPTIONS = ("--tls-cert", "--tls-key", "--tls-client-ca", "--backend-ca", "--backend-cert",
                "--backend-key")
CERT_MANAGER_ISSUER_KINDS = {"Issuer", "ClusterIssuer"}


def file_options(container: Object) -> dict[str, str]:
    """`{option: path}` for the TLS file options in the container's args."""
    args = container["args"]
    return {arg: args[i + 1] for i, arg in enumerate(args) if arg in FILE_OPTIONS}


def hours(duration: str) -> float:
    """A cert-manager duration made of h/m/s parts ("2160h", "1h30m") in hours."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"not a duration: {duration!r}"
    h, m, s = (int(x or 0) for x in parts.groups())
    return h + m / 60 + s / 3600


def test_the_proxy_serves_tls_and_speaks_tls_to_the_backends() -> None:
    settings = container_settings(CONTAINER)

    assert settings.worker.tls_cert and settings.worker.tls_key
    assert settings.worker.backend_tls and settings.worker.backend_ca
    (route,) = settings.routes
    (port,) = [p for p in CONTAINER["ports"] if p["containerPort"] == route.listen.port]
    assert port["hostPort"] == route.listen.port


def test_every_tls_file_is_a_key_of_the_certificates_secret_mounted_whole() -> None:
    """A subPath mount is copied once at start and never updated: rotation would not reach
    the proxy. The files must be keys a cert-manager Secret holds."""
    volumes = {v["name"]: v for v in pod_spec(DAEMONSET)["volumes"]}
    mounts = {m["mountPath"].rstrip("/"): m for m in CONTAINER["volumeMounts"]}
    secrets = {c["spec"]["secretName"] for c in find_objects(OBJECTS, "Certificate")
               if c["metadata"]["namespace"] == DAEMONSET["metadata"]["namespace"]}
    options = file_options(CONTAINER)

    assert {"--tls-cert", "--tls-key", "--backend-ca"} <= options.keys()
    for option, path in options.items():
        directory, _, key = path.rpartition("/")
        mount = mounts[directory]
        volume = volumes[mount["name"]]
        assert key in TLS_SECRET_KEYS, f"{option} {path}: not a key of the Secret"
        assert "subPath" not in mount and "subPathExpr" not in mount, option
        assert mount.get("readOnly") is True, option
        assert volume["secret"]["secretName"] in secrets, f"{option}: not a Certificate's Secret"
    assert {volumes[mounts[p.rpartition("/")[0]]["name"]]["secret"]["defaultMode"]
            for p in options.values()} == {0o440}
    assert pod_spec(DAEMONSET)["securityContext"]["fsGroup"] == 10001, "the key's group"


def test_the_certificate_has_what_cert_manager_requires_and_the_proxy_uses() -> None:
    (certificate,) = find_objects(OBJECTS, "Certificate")
    spec = certificate["spec"]

    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert spec["secretName"] and spec["dnsNames"]
    assert spec["issuerRef"]["name"] and spec["issuerRef"]["kind"] in CERT_MANAGER_ISSUER_KINDS
    assert spec["issuerRef"].get("group", "cert-manager.io") == "cert-manager.io"
    # Served to clients, and presented to backends as a client certificate.
    assert {"server auth", "client auth"} <= set(spec["usages"])
    assert 0 < hours(spec["renewBefore"]) < hours(spec["duration"])


def test_an_arg_naming_a_file_no_secret_holds_fails_its_check() -> None:
    """The mounted files stand in for the Secret's keys only: the parse test can fail."""
    container = {**CONTAINER, "args": [*CONTAINER["args"][:-1], "/etc/gproxy-mp/tls/other.pem"]}

    with pytest.raises(ConfigError, match=r"other\.pem"):
        container_settings(container)


def test_mounted_args_hold_real_pem_files_only_while_parsing() -> None:
    with mounted_args(CONTAINER) as args:
        paths = [Path(a) for a in args if a.endswith((".crt", ".key"))]
        assert paths and all(p.read_bytes().startswith(b"-----BEGIN ") for p in paths)
    assert not any(p.exists() for p in paths)
