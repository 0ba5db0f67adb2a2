"""etcd and kube-apiserver as real processes inside the tier's network namespace.

Both are started from pytest's main thread with ``ip netns exec`` in their own session, log to
files under the session's tmp dir, and are stopped with SIGTERM to their group, a bounded wait,
then SIGKILL. Readiness is a probe that succeeds (etcd ``/health``, apiserver ``/readyz``), run
on a :class:`~harness.kube.netns.PinnedThread` because only that thread can reach them.

Ports are fixed (2379/2380 for etcd on 127.0.0.1, 6443 for the apiserver on 10.213.7.1): the
namespace belongs to this test run alone, so nothing else can hold them.

Forcing ``410 Gone``: the apiserver serves watches from its watch cache, a sliding window of
events kept regardless of etcd, so compaction alone expires nothing. Two recipes:

* :meth:`ControlPlane.expire_history` compacts etcd at its current revision and restarts the
  apiserver; its cache then starts at the newest revision, and a *new* watch from an older
  resourceVersion gets 410 (what a client sees after a restart or a long disconnect).
* :meth:`ControlPlane.second_apiserver` runs a second apiserver on the same port
  (``--permit-port-sharing``: SO_REUSEPORT, as in an HA control plane) whose cache starts
  later. It listens on the wildcard address while the first holds the exact one, so the kernel
  hands every connection to the first while it listens and to the second once it has gone.
  Stopping the first one with SIGTERM ends its watches *cleanly*
  (``--shutdown-watch-termination-grace-period``; without it graceful shutdown waits for open
  watches until SIGKILL, and the client sees a broken connection instead), so a client
  re-watches from its last resourceVersion, lands on the second apiserver, and gets 410.

  Why not both on the exact address: an apiserver calls itself through its bind address
  with a self-signed certificate of its own; on a shared exact address half of those
  connections reach the other apiserver and fail TLS, and the service-port repair hook,
  which tries once and then waits minutes, killed the second apiserver at start-up.
  Bound to the wildcard, its self-calls go to 127.0.0.1, which only it serves.

:meth:`ControlPlane.extra_apiserver` runs yet another apiserver on the same etcd but on a port
of its own and with extra flags (e.g. an API group switched off), for tests that need a
differently configured server next to the usual one.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.kube.binaries import Binaries
from harness.kube.netns import APISERVER_ADDRESS, NetworkNamespace, PinnedThread
from harness.kube.pki import Credentials
from harness.kube.process import PROBE_TIMEOUT, PeerProcess, tail, wait_ready

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
APISERVER_PORT = 6443
ETCD_START_TIMEOUT = 30.0
"""Seconds etcd may take to report healthy (typically well under 1 s)."""
APISERVER_START_TIMEOUT = 90.0
"""Seconds kube-apiserver may take to pass /readyz (post-start hooks on 2 busy cores)."""
WILDCARD_ADDRESS = "0.0.0.0"
"""Where the second, port-sharing apiserver listens (see the module doc)."""
SELF_ADDRESS = "127.0.0.1"
"""Where only the wildcard-bound apiserver answers (the first holds APISERVER_ADDRESS only)."""

@dataclass
class Etcd:
    binary: Path
    data_dir: Path
    peer: PeerProcess

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{ETCD_CLIENT_PORT}"

    def argv(self) -> list[str]:
        peer_url = f"http://127.0.0.1:{ETCD_PEER_PORT}"
        return [
            str(self.binary),
            "--name=default",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync=true",  # test data: speed over durability
            "--log-level=warn",
        ]

    def start(self, probe_thread: PinnedThread) -> None:
        self.peer.spawn(self.argv())
        wait_ready(self.peer, probe_thread, self._probe, ETCD_START_TIMEOUT)

    def _probe(self) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=PROBE_TIMEOUT) as r:
                body = json.load(r)
        except (OSError, ValueError) as error:
            return repr(error)
        return None if body.get("health") == "true" else repr(body)

    def _post(self, path: str, payload: dict[str, object]) -> dict[str, object]:
        """etcd's HTTP/JSON gateway to its gRPC API (must run on a pinned thread)."""
        request = urllib.request.Request(
            f"{self.client_url}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT * 5) as response:
            result: dict[str, object] = json.load(response)
            return result

    def revision(self) -> int:
        """The store's current revision (= the newest Kubernetes resourceVersion)."""
        result = self._post("/v3/kv/range", {"key": base64.b64encode(b"\0").decode()})
        header = result["header"]
        assert isinstance(header, dict), result
        return int(header["revision"])

    def bump(self) -> int:
        """Write a key outside Kubernetes' /registry prefix: the revision moves on, no object
        changes. Returns the new revision."""
        result = self._post(
            "/v3/kv/put",
            {"key": base64.b64encode(b"/gproxy-mp-tests/bump").decode(), "value": ""},
        )
        header = result["header"]
        assert isinstance(header, dict), result
        return int(header["revision"])

    def compact(self, revision: int) -> None:
        """Drop all history before ``revision``; watches from older versions get 410."""
        self._post("/v3/kv/compaction", {"revision": str(revision), "physical": True})


@dataclass
class ApiServer:
    binary: Path
    credentials: Credentials
    etcd_url: str
    peer: PeerProcess
    port: int = APISERVER_PORT
    extra_args: tuple[str, ...] = ()
    """Flags appended to the command line (e.g. ``--runtime-config=...``)."""
    readyz_excludes: tuple[str, ...] = ()
    """/readyz checks the readiness probe leaves out (``?exclude=NAME``)."""
    bind_address: str = APISERVER_ADDRESS
    probe_address: str = APISERVER_ADDRESS
    """Where the readiness probe asks: an address only this apiserver serves."""

    @property
    def url(self) -> str:
        return f"https://{APISERVER_ADDRESS}:{self.port}"

    def argv(self, port: int) -> list[str]:
        c = self.credentials
        return [
            str(self.binary),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.bind_address}",
            f"--advertise-address={APISERVER_ADDRESS}",
            f"--secure-port={port}",
            f"--tls-cert-file={c.serving_cert}",
            f"--tls-private-key-file={c.serving_key}",
            f"--token-auth-file={c.token_file}",
            "--authorization-mode=Node,RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # No controller-manager creates the `default` ServiceAccount the plugin would demand.
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer=https://{APISERVER_ADDRESS}:{self.port}",
            f"--service-account-key-file={c.service_account_key}",
            f"--service-account-signing-key-file={c.service_account_key}",
            # Otherwise it maintains the `kubernetes` Endpoints, which needs a routable address.
            "--endpoint-reconciler-type=none",
            # Lets a second apiserver serve the same address, as behind a load balancer.
            "--permit-port-sharing=true",
            # On SIGTERM end watches (cleanly, for the client) instead of waiting for them.
            "--shutdown-watch-termination-grace-period=5s",
            "--profiling=false",
            "--v=1",
            *self.extra_args,
        ]

    def start(self, probe_thread: PinnedThread, *, port: int | None = None) -> None:
        """Start and wait for /readyz; ``port`` serves elsewhere than clients' kubeconfig."""
        self.peer.spawn(self.argv(port or self.port))
        wait_ready(
            self.peer,
            probe_thread,
            lambda: self._probe(port or self.port),
            APISERVER_START_TIMEOUT,
        )

    def _probe(self, port: int) -> str | None:
        context = ssl.create_default_context(cafile=str(self.credentials.ca_cert))
        query = "&".join(f"exclude={name}" for name in self.readyz_excludes)
        url = f"https://{self.probe_address}:{port}/readyz" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=context) as response:
                return None if response.status == 200 else f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}: {error.read().decode(errors='replace')[-400:]}"
        except OSError as error:
            return repr(error)


class Member(Protocol):
    """What the control plane needs of one of its programs."""

    @property
    def peer(self) -> PeerProcess: ...

    def start(self, probe_thread: PinnedThread) -> None: ...


@dataclass
class ControlPlane:
    """etcd plus one kube-apiserver, and the pinned thread that can reach them."""

    etcd: Etcd
    apiserver: ApiServer
    probe_thread: PinnedThread
    controllers: list[Member] = dataclasses.field(default_factory=list)
    """Programs started after the apiserver, e.g. kube-controller-manager, kube-scheduler, kwok
    (:mod:`harness.kube.controllers`); none in the Kubernetes tier, where the tests write every
    EndpointSlice themselves."""

    @classmethod
    def build(
        cls,
        binaries: Binaries,
        *,
        credentials: Credentials,
        namespace: NetworkNamespace,
        directory: Path,
        probe_thread: PinnedThread,
    ) -> ControlPlane:
        """etcd and kube-apiserver in ``namespace``, data and logs in ``directory``; not started."""
        etcd = Etcd(
            binary=binaries.etcd,
            data_dir=directory / "etcd-data",
            peer=PeerProcess("etcd", namespace=namespace, log_path=directory / "etcd.log"),
        )
        apiserver = ApiServer(
            binary=binaries.kube_apiserver,
            credentials=credentials,
            etcd_url=etcd.client_url,
            peer=PeerProcess(
                "kube-apiserver", namespace=namespace, log_path=directory / "kube-apiserver.log"
            ),
        )
        return cls(etcd=etcd, apiserver=apiserver, probe_thread=probe_thread)

    def members(self) -> list[Member]:
        """The programs in start order (each one may need the ones before it); a new
        control-plane program is a field here, a line in this list and in :meth:`build`."""
        return [self.etcd, self.apiserver, *self.controllers]

    def start(self) -> None:
        for member in self.members():
            member.start(self.probe_thread)

    def stop(self) -> None:
        for member in reversed(self.members()):
            member.peer.stop()

    def restart_apiserver(self, *, kill: bool = True) -> None:
        """Stop (SIGKILL by default, so watches die without a clean end) and start again."""
        if kill:
            self.apiserver.peer.kill()
        else:
            self.apiserver.peer.stop()
        self.apiserver.start(self.probe_thread)

    def revision(self) -> int:
        return self.probe_thread.run(self.etcd.revision)

    def expire_history(self) -> int:
        """Compact etcd at its current revision and restart the apiserver (see module doc).

        Afterwards every watch from a resourceVersion older than the returned revision
        fails with 410 Gone, and clients must re-list.
        """
        revision = self.revision()
        self.probe_thread.run(self.etcd.compact, revision)
        self.restart_apiserver()
        return revision

    def _sibling(self, name: str, **fields: Any) -> ApiServer:
        """An apiserver like the first one, on the same etcd, as ``name``, with ``fields``
        changed; not started."""
        first = self.apiserver
        peer = PeerProcess(name, namespace=first.peer.namespace,
                           log_path=first.peer.log_path.with_name(f"{name}.log"))
        return dataclasses.replace(first, peer=peer, **fields)

    @contextlib.contextmanager
    def second_apiserver(self) -> Iterator[ApiServer]:
        """Another kube-apiserver on the same port (SO_REUSEPORT, wildcard address: it takes
        over the first one's connections once the first stops listening, see the module doc);
        its watch cache starts now. On exit it is stopped and the first apiserver runs again."""
        second = self._sibling("kube-apiserver-2", bind_address=WILDCARD_ADDRESS,
                               probe_address=SELF_ADDRESS)
        try:
            second.start(self.probe_thread)
            yield second
        finally:
            second.peer.stop()  # first, so that the first apiserver comes back on its own
            if not self.apiserver.peer.running():
                self.apiserver.start(self.probe_thread)

    @contextlib.contextmanager
    def extra_apiserver(
        self,
        name: str,
        *,
        port: int,
        extra_args: Sequence[str],
        readyz_excludes: Sequence[str] = (),
    ) -> Iterator[ApiServer]:
        """Another kube-apiserver on the same etcd, on its own ``port`` (reached only through
        its own URL) and with ``extra_args``, e.g. an API group switched off; it counts as
        ready when /readyz passes without ``readyz_excludes``. Objects written through either
        apiserver are visible through both. Stopped on exit."""
        other = self._sibling(name, port=port, extra_args=tuple(extra_args),
                              readyz_excludes=tuple(readyz_excludes))
        try:
            other.start(self.probe_thread)
            yield other
        finally:
            other.peer.stop()

    def log_tails(self) -> dict[str, str]:
        return {member.peer.name: tail(member.peer.log_path) for member in self.members()}
