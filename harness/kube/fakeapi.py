"""A fake Kubernetes API server for EndpointSlice list and watch: real HTTP, canned answers.

It serves what a misbehaving API server, or a proxy in front of one, can send: a list answers
with an `EndpointSliceList`; each watch takes the next body from `watch_bodies` (its events as
newline-delimited JSON, or any bytes at all); when they run out, a watch is held open, sending
nothing, until `close`. Every request is recorded with its time. `write_kubeconfig` points a
client at it (plain HTTP, a dummy token).

Concurrency: `http.server.ThreadingHTTPServer` in a daemon thread, one thread per request;
`requests` is appended to under a lock and read by the test thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]

HOLD_TIMEOUT = 30.0
"""Seconds a held-open watch may last at most, should the test never close the server."""
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    at: float  # time.monotonic()

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch", "").lower() in ("true", "1")  # the client sends True


def endpoint_slice(name: str, version: str, *ips: str, service: str = "web") -> Json:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "resourceVersion": version,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        "ports": [{"name": "grpc", "port": 8080, "protocol": "TCP"}],
    }


def watch_lines(*events: Json) -> bytes:
    """A watch body: one JSON event per line."""
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


class FakeApiServer:
    """EndpointSlices of one namespace: `items` for every list, `watch_bodies` in turn."""

    def __init__(self, *, namespace: str, items: Sequence[Json], version: str,
                 watch_bodies: Sequence[bytes] = ()) -> None:
        self.namespace = namespace
        self.items = list(items)
        self.version = version
        self._bodies = list(watch_bodies)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake kube-apiserver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def watches(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.is_watch]

    def close(self) -> None:
        self._closing.set()  # held-open watches end, so clients see the stream close
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def write_kubeconfig(self, path: Path) -> Path:
        """A one-context kubeconfig (YAML is a JSON superset) for this server."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                      "namespace": self.namespace}}],
        }))
        return path

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        request = Request(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()},
                          time.monotonic())
        with self._lock:
            self.requests.append(request)
            body = self._bodies.pop(0) if request.is_watch and self._bodies else None
        if url.path != SLICES_PATH.format(namespace=self.namespace):
            self._send(handler, 404, json.dumps({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                "reason": "NotFound", "message": "the server could not find the requested "
                                                 "resource"}).encode())
        elif not request.is_watch:
            self._send(handler, 200, json.dumps({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": self.version}, "items": self.items}).encode())
        elif body is not None:
            self._send(handler, 200, body)
        else:
            # HTTP/1.0 without Content-Length: the body lasts until the connection closes.
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.flush()
            self._closing.wait(HOLD_TIMEOUT)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `requests`; stderr stays quiet

        return Handler
