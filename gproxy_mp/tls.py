"""TLS material, for the listener and towards the backends: the files, read and checked.

No gRPC here. The listener (`--tls-cert`, `--tls-key`; `--tls-client-ca` for mutual TLS) and
the backend side (`--backend-tls`; `--backend-ca` instead of the system trust store,
`--backend-cert` and `--backend-key` for mutual TLS) each have a `TlsFiles`. The files are
checked with Python's `ssl` (a key must match its certificate; a CA file must parse): at start a
bad one is one line naming the option and the file, exit 2 (`check_tls`); a worker re-reads
them when they change (`worker/credentials.py`) and keeps the old material if the new is bad.
`signature` is what changes when a file is replaced (its resolved path, inode, size, mtime),
so a Kubernetes secret volume's `..data` symlink swap is seen.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gproxy_mp.errors import ConfigError

LISTENER_OPTIONS = ("--tls-cert", "--tls-key", "--tls-client-ca")
BACKEND_OPTIONS = ("--backend-cert", "--backend-key", "--backend-ca")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """One side's files (paths): a certificate chain and its key (a client may have none),
    and the CAs it trusts for its peer (None: the system's, or no client certificates)."""

    cert: str | None
    key: str | None
    ca: str | None
    options: tuple[str, str, str]  # the options that named them: cert, key, ca


@dataclass(frozen=True, slots=True)
class Material:
    cert: bytes | None
    key: bytes | None
    ca: bytes | None


class MaterialError(ValueError):
    """A file that cannot be used; the message names its option and path."""


def load_material(files: TlsFiles) -> Material:
    """The files' contents, checked: the certificate chain and key parse and belong together,
    the CA file parses. Raises `MaterialError` naming the option and file."""
    cert_option, key_option, ca_option = files.options
    cert = key = ca = None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if files.cert is not None and files.key is not None:
        cert, key = _read(cert_option, files.cert), _read(key_option, files.key)
        try:
            context.load_cert_chain(files.cert, files.key)
        except ssl.SSLError as e:
            reason = e.reason or str(e)
            if "KEY_VALUES_MISMATCH" in str(e).upper():
                raise MaterialError(f"{key_option} {files.key!r} does not belong to "
                                    f"{cert_option} {files.cert!r}") from None
            raise MaterialError(f"{cert_option} {files.cert!r} / {key_option} {files.key!r}: "
                                f"not a PEM certificate chain and private key ({reason})"
                                ) from None
    if files.ca is not None:
        ca = _read(ca_option, files.ca)
        try:
            context.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as e:
            raise MaterialError(f"{ca_option} {files.ca!r}: not PEM CA certificates "
                                f"({getattr(e, 'reason', None) or e})") from None
    return Material(cert=cert, key=key, ca=ca)


def listener_tls(options: Any) -> TlsFiles | None:
    """The listener's files from `WorkerOptions`; None: plaintext. Raises `ConfigError` when
    the options do not go together."""
    cert, key, ca = options.tls_cert, options.tls_key, options.tls_client_ca
    if cert is None and key is None:
        if ca is not None:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together: give both")
    return TlsFiles(cert, key, ca, LISTENER_OPTIONS)


def backend_tls(options: Any) -> TlsFiles | None:
    """The backend side's files from `WorkerOptions`; None: plaintext to the backends."""
    cert, key, ca = options.backend_cert, options.backend_key, options.backend_ca
    if not options.backend_tls:
        given = [name for name, value in (("--backend-ca", ca), ("--backend-cert", cert),
                                          ("--backend-key", key),
                                          ("--backend-tls-server-name",
                                           options.backend_tls_server_name))
                 if value is not None]
        if given:
            raise ConfigError(f"{given[0]} needs --backend-tls")
        return None
    if (cert is None) != (key is None):
        raise ConfigError("--backend-cert and --backend-key go together: give both")
    return TlsFiles(cert, key, ca, BACKEND_OPTIONS)


def named_files(options: Any) -> list[str]:
    """Every TLS file of `WorkerOptions` (both sides) as `--option PATH`: what SIGHUP re-reads."""
    named = []
    for files in (listener_tls(options), backend_tls(options)):
        if files is not None:
            paths = (files.cert, files.key, files.ca)
            named += [f"{option} {path}" for option, path in zip(files.options, paths, strict=True)
                      if path is not None]
    return named


def check_tls(files: TlsFiles | None) -> None:
    """At start: every file of `files` is usable, else `ConfigError` (exit 2)."""
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


def signature(files: TlsFiles) -> tuple[object, ...]:
    """What changes when any of the files is replaced (a symlink swap included)."""
    parts: list[object] = []
    for path in (files.cert, files.key, files.ca):
        if path is None:
            continue
        try:
            real = os.path.realpath(path)
            stat = os.stat(real)
            parts.append((real, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError as e:
            parts.append((path, repr(e)))
    return tuple(parts)
