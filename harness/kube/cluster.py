"""The tests' hands on the API server: namespaces, headless Services, EndpointSlices, core/v1
Endpoints, RBAC, watches.

Every request runs on a :class:`~harness.kube.netns.PinnedThread` (the only place that can
reach 10.213.7.1); the methods here hop onto it, so tests call them from the main thread like
plain functions. Objects are sent and returned as plain dicts in API JSON shape, the same shape
the resolver reads, so a test states exactly what the API server stores.

Hand-made slices carry ``endpointslice.kubernetes.io/managed-by: gproxy-mp-tests`` so that real
controllers (in a kind cluster) would leave them alone; there is no controller-manager here, so
nothing else ever writes them. Namespaces are never deleted (without a controller-manager they
would stay Terminating forever): each test takes a fresh one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, watch

from harness.kube import pki
from harness.kube.netns import NetworkNamespace, PinnedThread, pinned

T = TypeVar("T")
JSON = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "gproxy-mp-tests"
REQUEST_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for one plain API request."""
WATCH_MARGIN = 10.0
"""Seconds a watch read may exceed the server-side ``timeoutSeconds`` before the client gives up."""

_names = itertools.count(1)


def endpoint(
    address: str,
    *,
    ready: bool | None = None,
    serving: bool | None = None,
    terminating: bool | None = None,
) -> JSON:
    """One EndpointSlice endpoint; a condition left ``None`` is omitted (the API's nil)."""
    conditions = {
        key: value
        for key, value in (("ready", ready), ("serving", serving), ("terminating", terminating))
        if value is not None
    }
    return {"addresses": [address], "conditions": conditions}


def slice_port(port: int | None, *, name: str = "", protocol: str = "TCP") -> JSON:
    return {"name": name, "port": port, "protocol": protocol}


def service_port(port: int, *, name: str = "", target_port: int | str | None = None) -> JSON:
    spec: JSON = {"name": name, "port": port, "protocol": "TCP"}
    if target_port is not None:
        spec["targetPort"] = target_port
    return spec


@dataclass
class Apis:
    """The typed API groups of one ApiClient (only ever used on its pinned thread)."""

    api_client: client.ApiClient
    core: client.CoreV1Api = field(init=False)
    discovery: client.DiscoveryV1Api = field(init=False)
    rbac: client.RbacAuthorizationV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.discovery = client.DiscoveryV1Api(self.api_client)
        self.rbac = client.RbacAuthorizationV1Api(self.api_client)


def raw(response: Any) -> JSON:
    """The JSON body of a ``_preload_content=False`` response."""
    data: JSON = json.loads(response.data)
    return data


class Kube:
    """A client with one identity (a bearer token), bound to a pinned thread."""

    def __init__(self, thread: PinnedThread, *, url: str, ca_cert: Path, token: str) -> None:
        self.thread = thread
        self.url = url
        self.ca_cert = ca_cert
        self.token = token
        configuration = client.Configuration(host=url)
        configuration.ssl_ca_cert = str(ca_cert)
        configuration.api_key = {"authorization": f"Bearer {token}"}
        self.apis = Apis(client.ApiClient(configuration))

    def call(self, fn: Callable[[Apis], T], *, timeout: float = 60.0) -> T:
        """``fn(apis)`` on the pinned thread."""
        return self.thread.run(fn, self.apis, timeout=timeout)

    def close(self) -> None:
        self.thread.run(self.apis.api_client.close)
        self.apis.api_client.rest_client.pool_manager.clear()

    @classmethod
    @contextlib.contextmanager
    def admin(cls, namespace: NetworkNamespace, credentials: pki.Credentials, *, url: str,
              thread_name: str) -> Iterator[Kube]:
        """The admin identity on the apiserver at ``url``, on a thread pinned into
        ``namespace``; closed on exit."""
        with pinned(namespace, thread_name) as thread:
            kube = cls(thread, url=url, ca_cert=credentials.ca_cert,
                       token=credentials.admin_token)
            try:
                yield kube
            finally:
                kube.close()

    # --- namespaces and Services -------------------------------------------------------------

    def create_namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{next(_names)}-{secrets.token_hex(3)}"
        self.call(
            lambda a: a.core.create_namespace(
                {"metadata": {"name": name}}, _request_timeout=REQUEST_TIMEOUT
            )
        )
        return name

    def create_service(self, namespace: str, name: str, ports: Sequence[JSON]) -> JSON:
        """A selectorless headless Service: only hand-made slices give it endpoints."""
        body = {
            "metadata": {"name": name},
            "spec": {"clusterIP": "None", "ports": list(ports)},
        }
        return self.call(
            lambda a: raw(
                a.core.create_namespaced_service(
                    namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )

    # --- EndpointSlices ---------------------------------------------------------------------

    def slice_body(
        self,
        service: str,
        *,
        name: str | None = None,
        endpoints: Sequence[JSON] = (),
        ports: Sequence[JSON] = (),
        address_type: str = "IPv4",
        labels: Mapping[str, str] | None = None,
    ) -> JSON:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name or f"{service}-{secrets.token_hex(3)}",
                "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: MANAGED_BY}
                | dict(labels or {}),
            },
            "addressType": address_type,
            "endpoints": list(endpoints),
            "ports": list(ports),
        }

    def create_slice(self, namespace: str, service: str, **spec: Any) -> JSON:
        """Create a slice for ``service`` (keywords as :meth:`slice_body`); return it as stored."""
        body = self.slice_body(service, **spec)
        return self.call(
            lambda a: raw(
                a.discovery.create_namespaced_endpoint_slice(
                    namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )

    def replace_slice(self, namespace: str, stored: JSON, **changes: Any) -> JSON:
        """Replace a stored slice's ``endpoints``/``ports`` (optimistic: uses its version)."""
        body = json.loads(json.dumps(stored))
        body.update(changes)
        name = body["metadata"]["name"]
        return self.call(
            lambda a: raw(
                a.discovery.replace_namespaced_endpoint_slice(
                    name, namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )

    def delete_slice(self, namespace: str, name: str) -> None:
        self.call(
            lambda a: a.discovery.delete_namespaced_endpoint_slice(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def list_slices(self, namespace: str, service: str) -> JSON:
        return self.call(
            lambda a: raw(
                a.discovery.list_namespaced_endpoint_slice(
                    namespace,
                    label_selector=f"{SERVICE_NAME_LABEL}={service}",
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            )
        )

    # --- core/v1 Endpoints (the resolver's fallback where EndpointSlices are not served) ---

    @staticmethod
    def endpoints_body(
        service: str, *, addresses: Sequence[str], ports: Sequence[JSON]
    ) -> JSON:
        """The Endpoints object of ``service``: one subset, every address ready."""
        subsets = (
            [{"addresses": [{"ip": a} for a in addresses], "ports": list(ports)}]
            if addresses
            else []
        )
        return {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": service},
            "subsets": subsets,
        }

    def create_endpoints(
        self, namespace: str, service: str, *, addresses: Sequence[str], ports: Sequence[JSON]
    ) -> JSON:
        """Create ``service``'s Endpoints (``ports`` as :func:`slice_port` makes them, the
        same shape); return it as stored."""
        body = self.endpoints_body(service, addresses=addresses, ports=ports)
        return self.call(
            lambda a: raw(
                a.core.create_namespaced_endpoints(
                    namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )

    def replace_endpoints(
        self, namespace: str, stored: JSON, *, addresses: Sequence[str], ports: Sequence[JSON]
    ) -> JSON:
        """Replace a stored Endpoints object's subsets (optimistic: uses its version)."""
        name = stored["metadata"]["name"]
        body = self.endpoints_body(name, addresses=addresses, ports=ports)
        body["metadata"] = stored["metadata"]
        return self.call(
            lambda a: raw(
                a.core.replace_namespaced_endpoints(
                    name, namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )

    # --- identities -------------------------------------------------------------------------

    def create_service_account(self, namespace: str, name: str, *, rules: Sequence[JSON]) -> None:
        """A ServiceAccount bound (Role + RoleBinding in ``namespace``) to exactly ``rules``."""
        role = {"metadata": {"name": name}, "rules": list(rules)}
        binding = {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }

        def create(a: Apis) -> None:
            kw: dict[str, Any] = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}
            a.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}}, **kw)
            a.rbac.create_namespaced_role(namespace, role, **kw)
            a.rbac.create_namespaced_role_binding(namespace, binding, **kw)

        self.call(create)

    def replace_role_rules(self, namespace: str, name: str, *, rules: Sequence[JSON]) -> None:
        """Change what a Role created by :meth:`create_service_account` grants."""
        body = {"metadata": {"name": name}, "rules": list(rules)}
        self.call(
            lambda a: a.rbac.replace_namespaced_role(
                name, namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def service_account_token(self, namespace: str, name: str, *, seconds: int = 3600) -> str:
        """A real, signed service-account token from the TokenRequest API."""
        body = {"spec": {"audiences": [], "expirationSeconds": seconds}}
        response = self.call(
            lambda a: raw(
                a.core.create_namespaced_service_account_token(
                    name, namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )
        token: str = response["status"]["token"]
        return token

    def with_token(self, token: str, thread: PinnedThread | None = None) -> Kube:
        """The same API server as another identity (on the same pinned thread by default)."""
        return Kube(thread or self.thread, url=self.url, ca_cert=self.ca_cert, token=token)

    def service_account_kubeconfig(
        self, namespace: str, path: Path, *, rules: Sequence[JSON], name: str = "proxy"
    ) -> Path:
        """A kubeconfig at ``path`` for a new ServiceAccount ``name`` bound to exactly ``rules``,
        with a real signed token: what a deployed proxy holds."""
        self.create_service_account(namespace, name, rules=rules)
        token = self.service_account_token(namespace, name)
        return self.with_token(token).write_kubeconfig(path, user=name)

    def write_kubeconfig(self, path: Path, *, user: str = "test") -> Path:
        """A kubeconfig for this identity, for ``gproxy-mp --kubeconfig``."""
        path.write_text(
            pki.kubeconfig(server=self.url, ca_cert=self.ca_cert, token=self.token, user=user)
        )
        return path


class SliceWatch:
    """A watch on one Service's slices, read on its own pinned thread into a queue.

    ``events`` receives ``(type, raw object)`` tuples, then one final item: ``None`` when the
    server ended the watch normally, or the exception that ended it (e.g. a 410 ApiException).
    """

    def __init__(
        self,
        kube: Kube,
        namespace: NetworkNamespace,
        *,
        kube_namespace: str,
        service: str,
        resource_version: str,
        timeout_seconds: int = 30,
    ) -> None:
        self.events: queue.Queue[tuple[str, JSON] | BaseException | None] = queue.Queue()
        self._thread = namespace.pinned_thread("slice-watch")
        self._watch = watch.Watch()
        self._own = kube.with_token(kube.token, self._thread)
        self._future = self._thread.submit(
            self._read, kube_namespace, service, resource_version, timeout_seconds
        )

    def _read(self, kube_namespace: str, service: str, rv: str, timeout_seconds: int) -> None:
        try:
            for event in self._watch.stream(
                self._own.apis.discovery.list_namespaced_endpoint_slice,
                kube_namespace,
                label_selector=f"{SERVICE_NAME_LABEL}={service}",
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + WATCH_MARGIN),
            ):
                self.events.put((event["type"], event["raw_object"]))
        except BaseException as error:  # handed to the test through the queue
            self.events.put(error)
        else:
            self.events.put(None)

    def next(self, *, timeout: float) -> tuple[str, JSON] | BaseException | None:
        """The next queued item; ``queue.Empty`` after ``timeout`` seconds."""
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        """Unblock the reader (stop() shuts its socket down), then release its client."""
        self._watch.stop()
        try:
            self._future.result(timeout=WATCH_MARGIN)
            self._own.close()
        finally:
            self._thread.close()
