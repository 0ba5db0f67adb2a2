"""TLS options and files, for the listener and towards the backends: which files, and the
error that says one cannot be used.

No gRPC and no certificate parsing here (`tls_material.py` reads and checks the files), so a
worker that speaks no TLS (the native plane's) imports this without `cryptography` (an
import-linter contract). The listener (`--tls-cert`, `--tls-key`; `--tls-client-ca` for mutual TLS)
and the backend side (`--backend-tls`; `--backend-ca` instead of the system trust store,
`--backend-cert` and `--backend-key` for mutual TLS) each have a `TlsFiles`.
`signature` is what changes when a file is replaced (its resolved path, inode, size, mtime),
so a Kubernetes secret volume's `..data` symlink swap is seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from gproxy_mp.bus.schema import TlsRefusal
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


class MaterialError(ValueError):
    """A file that cannot be used; the message names its option and path, `reason` says why
    in the words of the refusal metric."""

    def __init__(self, message: str, *, reason: TlsRefusal = TlsRefusal.UNUSABLE) -> None:
        super().__init__(message)
        self.reason = reason


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
