"""The Kubernetes tier's network namespace: create it, run processes and Python code inside it.

The API server refuses loopback endpoint addresses, so the tier needs real-looking addresses
(10.213.7.x, fd00:213:7::x). They live on the ``lo`` of a namespace this test run creates, and
traffic never leaves that namespace.

Two ways in, and which one each caller uses:

* **Processes** (etcd, kube-apiserver, backends, the proxy, the gRPC traffic client) are started
  with ``ip netns exec NS ...`` (:meth:`NetworkNamespace.command`). ``ip`` calls setns and then
  execs the program, so the pid we hold is the program's and signals to its group reach it.
* **Python code in pytest's own process** (the kube client, readiness probes, etcd compaction)
  runs on a :class:`PinnedThread`: a single thread that called ``setns(CLONE_NEWNET)`` once. On
  Linux the network namespace belongs to the *thread*, and sockets belong to the namespace of
  the thread that created them, so every socket that thread opens is inside, while pytest's main
  thread (and every other tier in the session) stays in the root namespace.

gRPC is deliberately not used on a pinned thread: grpcio connects from its own internal threads,
which were not created inside the namespace. Measured here: a call made from a pinned thread
worked only while grpc's threads happened to be spawned from it, and later calls reached whatever
answers 10.213.7.x in the root namespace. The same applies to code run on the wrong thread in
general: in the root namespace 10.213.7.x is routed to the default gateway, which may answer,
so :meth:`PinnedThread.run` checks the calling thread's namespace on every call.

Concurrency: each PinnedThread runs one call at a time; a blocking watch needs its own thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/var/run/netns")
NAME_PREFIX = "gpx-k8s-"
"""Namespaces the Kubernetes tiers create are named ``gpx-k8s-<pid of pytest>[-<tier>]``."""
IP_TIMEOUT = 10.0
"""Seconds an ``ip`` command may take."""
CALL_TIMEOUT = 120.0
"""Seconds a call on a pinned thread may take unless the caller gives its own bound."""

APISERVER_ADDRESS = "10.213.7.1"
BACKEND_ADDRESSES = tuple(f"10.213.7.{host}" for host in range(11, 20))
BACKEND_ADDRESS_V6 = "fd00:213:7::11"
ADDRESSES = (
    f"{APISERVER_ADDRESS}/32",
    *(f"{address}/32" for address in BACKEND_ADDRESSES),
    f"{BACKEND_ADDRESS_V6}/128",
)
"""Every address the tier's namespace carries on its ``lo`` (for :func:`create`)."""


def ip(*args: str) -> str:
    """Run ``ip ARGS`` and return its stdout; a failure raises with ip's own message."""
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def current_namespace() -> str:
    """The network namespace of the calling thread, e.g. ``net:[4026532177]``."""
    return os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/net")


def enter(name: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class NetworkNamespace:
    name: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def inode(self) -> str:
        return f"net:[{os.stat(NETNS_DIR / self.name).st_ino}]"

    def pinned_thread(self, name: str) -> PinnedThread:
        return PinnedThread(self, name=name)


def create(
    name: str, addresses: Sequence[str], *, local_routes: Sequence[str] = ()
) -> NetworkNamespace:
    """A new namespace with ``lo`` up and ``addresses`` (CIDR notation) on it; every address of
    each ``local_routes`` prefix is local too (a ``local`` route: bindable, answered by ``lo``),
    e.g. the pod CIDRs of the real-cluster tier."""
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        for address in addresses:
            family = "-6" if ":" in address else "-4"
            # nodad: the address is usable at once instead of after duplicate detection.
            extra = ["nodad"] if family == "-6" else []
            ip("-n", name, family, "addr", "add", address, "dev", "lo", *extra)
        for prefix in local_routes:
            ip("-n", name, "route", "add", "local", prefix, "dev", "lo")
    except BaseException:
        delete(name)
        raise
    return NetworkNamespace(name)


def delete(name: str) -> None:
    """Delete the namespace; processes still inside keep it alive until they exit."""
    with contextlib.suppress(RuntimeError):
        ip("netns", "del", name)


def stale_names() -> list[str]:
    """Namespaces of earlier runs of this tier whose pytest process is gone."""
    if not NETNS_DIR.is_dir():
        return []
    stale = []
    for entry in NETNS_DIR.iterdir():
        suffix = entry.name.removeprefix(NAME_PREFIX)
        pid = suffix.split("-", 1)[0]
        if suffix != entry.name and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.append(entry.name)
    return sorted(stale)


class PinnedThread:
    """One thread inside the namespace that runs submitted callables one at a time."""

    def __init__(self, namespace: NetworkNamespace, *, name: str) -> None:
        self.namespace = namespace
        self._expected = namespace.inode()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name, initializer=enter, initargs=(namespace.name,)
        )

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._executor.submit(self._checked, fn, *args, **kwargs)

    def run(
        self,
        fn: Callable[..., T],
        /,
        *args: object,
        timeout: float = CALL_TIMEOUT,
        **kwargs: object,
    ) -> T:
        """``fn(*args, **kwargs)`` on this thread; its exception is re-raised here."""
        return self.submit(fn, *args, **kwargs).result(timeout=timeout)

    def _checked(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        here = current_namespace()
        if here != self._expected:
            raise RuntimeError(f"pinned thread is in {here}, not {self._expected}")
        return fn(*args, **kwargs)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def pinned(namespace: NetworkNamespace, name: str) -> Iterator[PinnedThread]:
    thread = namespace.pinned_thread(name)
    try:
        yield thread
    finally:
        thread.close()
