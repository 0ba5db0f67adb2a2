"""Credentials of the test API server, written once per session: CA, serving cert, keys, tokens.

Files (all in one directory, the paths are the attributes of :class:`Credentials`):

=============  =================================================================
ca.crt         self-signed CA; clients (kube client, kubeconfig) trust only it
serving.crt    leaf for kube-apiserver, SAN IP:10.213.7.1, IP:127.0.0.1, DNS:localhost
serving.key
sa.key         RSA key that signs *and* verifies service-account tokens
tokens.csv     static bearer tokens: an admin in ``system:masters`` and a limited user
=============  =================================================================

The CA and the serving certificate come from `harness.certs`. Nothing here touches the
network or a process.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.certs import CertificateAuthority

ADMIN_USER = "admin"
LIMITED_USER = "limited"


@dataclass(frozen=True)
class Credentials:
    directory: Path
    admin_token: str
    limited_token: str

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "serving.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "serving.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def token_file(self) -> Path:
        return self.directory / "tokens.csv"


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def build_credentials(directory: Path, *, ip_addresses: list[str]) -> Credentials:
    """Write every file of the table above into ``directory`` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory, "gproxy-mp-tests-ca")
    serving = ca.issue("kube-apiserver", dns=["localhost"], ips=[*ip_addresses, "127.0.0.1"])

    credentials = Credentials(
        directory=directory,
        admin_token=secrets.token_hex(16),
        limited_token=secrets.token_hex(16),
    )
    credentials.ca_cert.write_bytes(ca.pem())
    credentials.serving_cert.write_bytes(serving.cert.read_bytes())
    credentials.serving_key.write_bytes(serving.key.read_bytes())
    # Service-account tokens are RS256 by default; one key serves both --service-account flags.
    credentials.service_account_key.write_bytes(
        _pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    )
    # token,user,uid,"group1,group2"
    credentials.token_file.write_text(
        f'{credentials.admin_token},{ADMIN_USER},uid-{ADMIN_USER},"system:masters"\n'
        f"{credentials.limited_token},{LIMITED_USER},uid-{LIMITED_USER}\n"
    )
    return credentials


def kubeconfig(*, server: str, ca_cert: Path, token: str, user: str) -> str:
    """A one-context kubeconfig (YAML is a JSON superset, so JSON it is)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": server, "certificate-authority": str(ca_cert)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        },
        indent=2,
    )
