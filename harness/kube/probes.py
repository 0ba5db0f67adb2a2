"""A kubelet's readiness probes (grpc, httpGet, tcpSocket), made from a pinned thread.

grpcio cannot be used here: it connects from threads of its own, which are not in the test's
network namespace. So the gRPC probe is one plain HTTP/2 request over a socket that the calling
(pinned) thread opens, framed by ``h2``: ``grpc.health.v1.Health/Check`` with the probe's
service name, as the kubelet sends it; SERVING is a success, anything else (another status, a
non-OK grpc-status, a refused or silent connection) a failure.

Each probe returns None on success, else a short reason (for the pod's condition message and
for test failures).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

PROBE_TIMEOUT = 1.0
"""Seconds a probe may take (the kubelet's default timeoutSeconds)."""
SERVING = 1
"""grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING."""


def _health_request(service: str) -> bytes:
    """HealthCheckRequest{service} in the gRPC length-prefixed framing."""
    name = service.encode()
    if len(name) > 127:
        raise ValueError("service name too long for this probe")
    message = (b"\x0a" + bytes([len(name)]) + name) if name else b""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def health_status(reply: bytes) -> int | None:
    """The status field of a framed HealthCheckResponse (None: not one)."""
    if len(reply) < 5 or reply[0] != 0:
        return None
    message = reply[5 : 5 + int.from_bytes(reply[1:5], "big")]
    if len(message) == 2 and message[0] == 0x08:
        return message[1]
    return 0 if message == b"" else None


def grpc_probe(host: str, port: int, *, service: str = "", timeout: float = PROBE_TIMEOUT) -> (
    str | None
):
    """One grpc.health.v1 Check over HTTP/2 prior knowledge (h2c), as the kubelet's probe."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return _exchange(sock, f"{host}:{port}", service)
    except (OSError, h2.exceptions.H2Error) as error:
        # H2Error: e.g. a server that is shutting down sends GOAWAY, then the reply's headers.
        return f"{type(error).__name__}: {error}"


def _exchange(sock: socket.socket, authority: str, service: str) -> str | None:
    connection = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    connection.send_headers(stream, [
        (":method", "POST"), (":scheme", "http"), (":authority", authority),
        (":path", "/grpc.health.v1.Health/Check"), ("content-type", "application/grpc"),
        ("te", "trailers"), ("user-agent", "kube-probe/gproxy-mp-tests"),
    ])  # fmt: skip
    connection.send_data(stream, _health_request(service), end_stream=True)
    sock.sendall(connection.data_to_send())
    body = b""
    headers: dict[str, str] = {}
    while True:
        data = sock.recv(65536)
        if not data:
            return "connection closed before the reply ended"
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                headers.update(_text_headers(event.headers))
            elif isinstance(event, h2.events.StreamReset):
                return f"stream reset ({event.error_code})"
            elif isinstance(event, h2.events.ConnectionTerminated):
                return f"GOAWAY ({event.error_code})"
            elif isinstance(event, h2.events.StreamEnded):
                return _verdict(headers, body)
        sock.sendall(connection.data_to_send())


def _text_headers(headers: Any) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in headers
    }


def _verdict(headers: dict[str, str], body: bytes) -> str | None:
    code = headers.get("grpc-status", "")
    if code != "0":
        return f"grpc-status {code or '?'}: {headers.get('grpc-message', '')}"
    status = health_status(body)
    return None if status == SERVING else f"health status {status}"


def http_probe(host: str, port: int, path: str, *, timeout: float = PROBE_TIMEOUT) -> str | None:
    """``GET http://host:port/path``: 200-399 is a success (the kubelet's httpGet rule)."""
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if 200 <= response.status < 400 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def tcp_probe(host: str, port: int, *, timeout: float = PROBE_TIMEOUT) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return f"{type(error).__name__}: {error}"
