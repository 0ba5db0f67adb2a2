"""Reading the files the proxy is pointed at, each within a size bound.

Every file an option names (a descriptor set, TLS material, a kubeconfig, the pod's
service-account files) is read here, by `read_bounded`, and nowhere else: at most `limit + 1`
bytes in `CHUNK`-sized reads, so a wrong path (`/dev/zero`, a log file, a disk image) fails at
once with one line naming the option, the file and the bound, instead of growing the process
until memory runs out. `check_bounded` reads and discards, for files that a library opens by
path itself (the Kubernetes client's kubeconfig and service-account token).

Blocking, no threads of its own; callers run it at start or in a worker's TLS check.
"""

from __future__ import annotations

import os

from gproxy_mp.errors import ConfigError

KiB = 1 << 10
MiB = 1 << 20
CHUNK = 64 * KiB
"""Bytes asked for per read: small enough that a bound is never overshot by much."""

DESCRIPTOR_SET_LIMIT = 64 * MiB
"""`--proto-descriptor-set`: every proto of a large monorepo, with source info, stays below."""
TLS_FILE_LIMIT = 1 * MiB
"""A certificate chain or a private key (PEM): a few KiB each in practice."""
CA_BUNDLE_LIMIT = 4 * MiB
"""A CA bundle (PEM): a whole system trust store is about 220 KiB."""
KUBECONFIG_LIMIT = 4 * MiB
"""A kubeconfig, embedded certificates of many clusters included."""
SERVICE_ACCOUNT_FILE_LIMIT = 1 * MiB
"""The pod's service-account token, CA and namespace files (a token is about 1 KiB)."""


class FileReadError(ConfigError):
    """A file that cannot be read, or is larger than its bound; the message names the option,
    the file and the bound."""


def describe_limit(limit: int) -> str:
    """`64 MiB`, `512 KiB`, `100 bytes`: a bound as a person reads it."""
    for unit, size in (("MiB", MiB), ("KiB", KiB)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def read_bounded(path: str | os.PathLike[str], *, option: str, limit: int) -> bytes:
    """The file's bytes; `FileReadError` when it cannot be read or holds more than `limit`
    bytes. An endless file costs at most `limit + 1` bytes and, from a regular file or a
    device, `limit // CHUNK + 2` reads."""
    try:
        with open(path, "rb", buffering=0) as f:
            chunks: list[bytes] = []
            size = 0
            for _ in range(limit + 2):  # each read returns a byte or more, or ends the loop
                chunk = f.read(min(CHUNK, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
    except OSError as e:
        raise FileReadError(f"{option} {os.fspath(path)!r}: {e.strerror or e}") from None
    if size > limit:
        raise FileReadError(f"{option} {os.fspath(path)!r}: larger than the "
                            f"{describe_limit(limit)} this option accepts")
    return b"".join(chunks)


def check_bounded(path: str | os.PathLike[str], *, option: str, limit: int) -> None:
    """`read_bounded`, for a file that another library will open by path: the same errors,
    before that library reads it whole."""
    read_bounded(path, option=option, limit=limit)
