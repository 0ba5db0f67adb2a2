"""TLS material for the listener: the files, read and checked. No gRPC here.

`--tls-cert` and `--tls-key` (PEM) make every route's listener speak TLS; `--tls-client-ca`
also requires client certificates signed by that CA (mutual TLS). The files are checked with
Python's `ssl` (the key must match the certificate; the CA must parse): at start a bad one is
one line naming the option and the file, exit 2 (`check_listener_tls`); a worker re-reads them
when they change (`worker/credentials.py`) and keeps the old material if the new is bad.
`signature` is what changes when a file is replaced (its resolved path, inode, size, mtime),
so a Kubernetes secret volume's symlink swap is seen.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gproxy_mp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """`--tls-cert`, `--tls-key` and, for mutual TLS, `--tls-client-ca` (paths)."""

    cert: str
    key: str
    client_ca: str | None = None


@dataclass(frozen=True, slots=True)
class Material:
    cert: bytes
    key: bytes
    client_ca: bytes | None


class MaterialError(ValueError):
    """A file that cannot be used; the message names its option and path."""


def load_material(files: ListenerTls) -> Material:
    """The files' contents, checked: the certificate chain and key parse and belong together,
    the client CA parses. Raises `MaterialError` naming the option and file."""
    cert = _read("--tls-cert", files.cert)
    key = _read("--tls-key", files.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert, files.key)
    except ssl.SSLError as e:
        reason = e.reason or str(e)
        if "KEY_VALUES_MISMATCH" in str(e).upper() or reason == "KEY_VALUES_MISMATCH":
            raise MaterialError(f"--tls-key {files.key!r} does not belong to --tls-cert "
                                f"{files.cert!r}") from None
        raise MaterialError(f"--tls-cert {files.cert!r} / --tls-key {files.key!r}: not a PEM "
                            f"certificate chain and private key ({reason})") from None
    client_ca = None
    if files.client_ca is not None:
        client_ca = _read("--tls-client-ca", files.client_ca)
        try:
            context.load_verify_locations(cadata=client_ca.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as e:
            raise MaterialError(f"--tls-client-ca {files.client_ca!r}: not PEM CA "
                                f"certificates ({getattr(e, 'reason', None) or e})") from None
    return Material(cert=cert, key=key, client_ca=client_ca)


def listener_tls(options: Any) -> ListenerTls | None:
    """`--tls-cert`, `--tls-key`, `--tls-client-ca` of `WorkerOptions`; None: plaintext.
    Raises `ConfigError` when they do not go together."""
    cert, key, client_ca = options.tls_cert, options.tls_key, options.tls_client_ca
    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together: give both")
    return ListenerTls(cert=cert, key=key, client_ca=client_ca)


def check_listener_tls(files: ListenerTls | None) -> None:
    """At start: every listener TLS file is usable, else `ConfigError` (exit 2)."""
    if files is not None:
        try:
            load_material(files)
        except MaterialError as e:
            raise ConfigError(str(e)) from None


def _read(option: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise MaterialError(f"{option} {path!r}: {e.strerror or e}") from None


def signature(files: ListenerTls) -> tuple[object, ...]:
    """What changes when any of the files is replaced (a symlink swap included)."""
    parts: list[object] = []
    for path in (files.cert, files.key, files.client_ca):
        if path is None:
            continue
        try:
            real = os.path.realpath(path)
            stat = os.stat(real)
            parts.append((real, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError as e:
            parts.append((path, repr(e)))
    return tuple(parts)


