"""A thin, blocking adapter over the Kubernetes API: list, watch and get, on raw JSON.

Everything here runs in the Kubernetes resolver's own thread (the official client is
synchronous, urllib3 underneath). Objects stay raw dicts: no model deserialization, no drift
between client and server versions; `slices.py` is the one reader of their fields.

Errors become `KubeApiError`, whose message is one line a human can act on, e.g.
`cannot list endpointslices.discovery.k8s.io in namespace shop: grant get, list, watch`.
A watch answered with `410 Gone` (its resourceVersion was compacted away) raises
`ResourceExpiredError`: the caller must relist. A watch line that is not a watch event (a
proxy's HTML error page, a cut line) is a `KubeApiError` too, never a stray `ValueError`.
Authentication: `--kubeconfig`, else the pod's service account (its token file is re-read
every minute, so rotated tokens keep working), else `$KUBECONFIG` or `~/.kube/config`.
The client reads those files itself, by path: each is first read within its bound
(`files.check_bounded`), so a wrong path is one line at start. Not bounded: the client's own
minutely re-reads of the token (one that grows past its bound later is read whole), and the
files a kubeconfig names (`client-certificate`, `client-key`, `certificate-authority`), which
the client and urllib3 read by path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from gproxy_mp.errors import ConfigError
from gproxy_mp.files import (
    KUBECONFIG_LIMIT,
    SERVICE_ACCOUNT_FILE_LIMIT,
    check_bounded,
    read_bounded,
)

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to the API server."""
READ_TIMEOUT = 60.0
"""Seconds one read of a list or watch may block; a half-dead watch connection (no FIN, no
bookmarks) is abandoned after this long and the watch resumes from its resourceVersion."""
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
STREAM_CHUNK = 1 << 16
MALFORMED_SHOWN = 80
"""Bytes of a malformed watch line quoted in the error: enough to tell an HTML error page
from a truncated event, never a whole object in a log line."""

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for core
    plural: str

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


ENDPOINT_SLICES = Resource("discovery.k8s.io", "endpointslices")
ENDPOINTS = Resource("", "endpoints")
SERVICES = Resource("", "services")
NODES = Resource("", "nodes")
CLUSTER_SCOPED = frozenset({NODES})
ZONE_LABEL = "topology.kubernetes.io/zone"


class KubeApiError(Exception):
    """A failed API call; `status` is the HTTP status, None for connection-level failures."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ResourceExpiredError(KubeApiError):
    """410 Gone: the watch's resourceVersion is too old. Relist."""


def default_namespace() -> str:
    """The pod's own namespace when running in one, else `default`."""
    if not os.access(NAMESPACE_FILE, os.R_OK):  # not in a pod (or no service account)
        return "default"
    data = read_bounded(NAMESPACE_FILE, option="the service-account namespace file",
                        limit=SERVICE_ACCOUNT_FILE_LIMIT)
    return data.decode(errors="replace").strip() or "default"


def _check_kubeconfig_files(paths: str, *, option: str) -> None:
    """Each file of a kubeconfig path list that exists, within `KUBECONFIG_LIMIT`, before the
    client reads them whole (it splits the list as `$KUBECONFIG` is split)."""
    for path in paths.split(kube_config.ENV_KUBECONFIG_PATH_SEPARATOR):
        expanded = os.path.expanduser(path)
        if path and os.path.exists(expanded):
            check_bounded(expanded, option=option, limit=KUBECONFIG_LIMIT)


def _check_service_account_files() -> None:
    for path, what in ((incluster_config.SERVICE_TOKEN_FILENAME, "token"),
                       (incluster_config.SERVICE_CERT_FILENAME, "CA")):
        if os.path.isfile(path):
            check_bounded(path, option=f"the service-account {what} file",
                          limit=SERVICE_ACCOUNT_FILE_LIMIT)


def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """Client configuration from `--kubeconfig`, the service account, or the default files."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            _check_kubeconfig_files(kubeconfig, option="--kubeconfig")
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            _check_service_account_files()
            config.load_incluster_config(client_configuration=configuration)
        else:
            _check_kubeconfig_files(kube_config.KUBE_CONFIG_DEFAULT_LOCATION,
                                    option="$KUBECONFIG" if os.environ.get("KUBECONFIG")
                                    else "the kubeconfig")
            config.load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as e:
        source = f"--kubeconfig {kubeconfig!r}" if kubeconfig else "Kubernetes credentials"
        raise ConfigError(f"{source}: {_first_line(e)} (in a pod the service account is "
                          "used; outside, pass --kubeconfig or set $KUBECONFIG)") from None
    # The resolver retries with its own jittered backoff; urllib3's retries would only add
    # three warnings (with the full URL) per reconnect.
    configuration.retries = False
    return configuration


class KubeApi:
    """List/watch/get for one namespace. Not thread-safe: one instance per thread."""

    def __init__(self, configuration: client.Configuration, *, namespace: str) -> None:
        self.namespace = namespace
        self._api_client = client.ApiClient(configuration)
        self._discovery = client.DiscoveryV1Api(self._api_client)
        self._core = client.CoreV1Api(self._api_client)
        self._authorization = client.AuthorizationV1Api(self._api_client)

    def close(self) -> None:
        self._api_client.close()

    def allowed(self, verb: str, resource: Resource) -> tuple[bool, str]:
        """Whether this identity may `verb` `resource` in the namespace (SelfSubjectAccessReview),
        and the API server's reason."""
        attributes = {"verb": verb, "group": resource.group, "resource": resource.plural}
        if resource not in CLUSTER_SCOPED:
            attributes["namespace"] = self.namespace
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes}}
        review = self._json("create", Resource("authorization.k8s.io",
                                                "selfsubjectaccessreviews"),
                            self._authorization.create_self_subject_access_review, body)
        status = review.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def get_service(self, name: str) -> Json | None:
        """The Service object, or None if it does not exist."""
        try:
            return self._json("get", SERVICES, self._core.read_namespaced_service, name,
                              self.namespace)
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    def node_zone(self, name: str) -> str | None:
        """The zone label of Node `name` (cluster-scoped; needs get on nodes), None without
        one or when there is no such node."""
        try:
            node = self._json("get", NODES, self._core.read_node, name)
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise
        labels = (node.get("metadata") or {}).get("labels") or {}
        zone = labels.get(ZONE_LABEL)
        return str(zone) if zone else None

    def list(self, resource: Resource, *, selector: str | None = None,
             name: str | None = None) -> tuple[list[Json], str]:
        """(items, resourceVersion) of a list by label selector or by object name."""
        body = self._json("list", resource, self._lister(resource), self.namespace,
                          **self._filters(selector, name))
        return list(body.get("items") or []), str((body.get("metadata") or {})
                                                    .get("resourceVersion", ""))

    def watch(self, resource: Resource, *, resource_version: str, timeout: float,
              selector: str | None = None, name: str | None = None) -> Iterator[Json]:
        """Start a watch (the request is made, and fails, here); its events (raw dicts with
        `type` and `object`) follow until the server ends the watch after about `timeout`
        seconds. Raises `ResourceExpiredError` on 410 Gone."""
        response = self._call("watch", resource, self._lister(resource), self.namespace,
                              watch=True, resource_version=resource_version,
                              allow_watch_bookmarks=True, timeout_seconds=int(timeout),
                              _preload_content=False,
                              _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                              **self._filters(selector, name))
        return self._events(response, resource)

    def _events(self, response: Any, resource: Resource) -> Iterator[Json]:
        try:
            yield from decode_watch(_lines(response), resource=resource,
                                    namespace=self.namespace)
        except urllib3.exceptions.HTTPError as e:
            raise KubeApiError(f"watch {resource} in namespace {self.namespace}: "
                               f"{_first_line(e)}") from None
        finally:
            response.close()
            response.release_conn()

    def _lister(self, resource: Resource) -> Any:
        if resource == ENDPOINT_SLICES:
            return self._discovery.list_namespaced_endpoint_slice
        return self._core.list_namespaced_endpoints

    @staticmethod
    def _filters(selector: str | None, name: str | None) -> dict[str, str]:
        if name is not None:
            return {"field_selector": f"metadata.name={name}"}
        return {"label_selector": selector} if selector else {}

    def _json(self, verb: str, resource: Resource, method: Any, *args: Any,
              **kwargs: Any) -> Json:
        response = self._call(verb, resource, method, *args, _preload_content=False,
                              _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs)
        try:
            body = json.loads(response.data)
        except (ValueError, urllib3.exceptions.HTTPError) as e:
            raise KubeApiError(f"{verb} {resource} in namespace {self.namespace}: "
                               f"unreadable answer: {_first_line(e)}") from None
        if not isinstance(body, dict):
            raise KubeApiError(f"{verb} {resource}: answer is not a JSON object")
        return body

    def _call(self, verb: str, resource: Resource, method: Any, *args: Any,
              **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ApiException as e:
            status: Any = None
            if e.body:
                try:
                    status = json.loads(e.body)
                except ValueError:
                    status = None
            if not isinstance(status, dict):
                status = {"code": e.status, "reason": e.reason, "message": e.reason}
            raise _status_error(verb, resource, self.namespace, status) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeApiError(f"{verb} {resource} in namespace {self.namespace}: "
                               f"{_first_line(e)}") from None


def decode_watch(lines: Iterable[bytes], *, resource: Resource,
                 namespace: str) -> Iterator[Json]:
    """Watch events from the lines of a watch response: objects with a string `type` and an
    object `object` (metadata, if any, an object too). A line that is not one (a proxy's error
    page, a truncated line) raises `KubeApiError`, like a broken connection: the watch failed.
    An ERROR event raises the error its Status object describes.
    """
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError as e:  # UnicodeDecodeError included
            raise _malformed(resource, namespace, line, _first_line(e)) from None
        if not (isinstance(event, dict) and isinstance(event.get("type"), str)
                and isinstance(event.get("object"), dict)
                and isinstance(event["object"].get("metadata") or {}, dict)):
            raise _malformed(resource, namespace, line, "not a watch event")
        if event["type"] == "ERROR":
            raise _status_error("watch", resource, namespace, event["object"])
        yield event


def _malformed(resource: Resource, namespace: str, line: bytes, reason: str) -> KubeApiError:
    shown = line[:MALFORMED_SHOWN].decode(errors="replace")
    return KubeApiError(f"watch {resource} in namespace {namespace}: malformed watch event "
                        f"({reason}): {shown!r}")


def _status_error(verb: str, resource: Resource, namespace: str, status: Any) -> KubeApiError:
    status = status if isinstance(status, dict) else {}
    code = status.get("code")
    message = _first_line(status.get("message") or status.get("reason") or "no details")
    if code == 410:
        return ResourceExpiredError(f"{verb} {resource}: {message}", status=410)
    if code == 403:
        return KubeApiError(f"cannot {verb} {resource} in namespace {namespace}: grant get, "
                            f"list, watch ({message})", status=403)
    if code == 401:
        return KubeApiError(f"{verb} {resource} in namespace {namespace}: unauthorized; check "
                            "the credentials (token expired?)", status=401)
    return KubeApiError(f"{verb} {resource} in namespace {namespace}: {code} {message}",
                        status=code if isinstance(code, int) else None)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON from a streamed response (lines may exceed any fixed buffer)."""
    pending = b""
    for chunk in response.stream(STREAM_CHUNK, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending
