"""The three workloads: what is sent, what the fixed-response backends answer, how it is checked.

Pure data and byte layout only (no I/O beyond writing the backend's response files). A gRPC
message on the wire is a 5-byte header (compressed flag 0, 4-byte big-endian length) and the
payload; the nginx backends serve the framed response bytes as a file, so a server-streaming
response is simply 1,000 frames back to back in one file.

Request and response payloads differ on purpose: a check that gets the response payload back
proves the backend answered, not an echo somewhere on the path. Every payload is a valid
protobuf message (field 1, bytes) because a proxy may re-decode messages as protobuf, as the Go
gproxy does (a non-protobuf body fails there with INTERNAL).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SERVICE = "bench.Svc"
STREAM_MESSAGES = 1000
"""Messages per server-streaming call."""


def frame(payload: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return struct.pack(">BI", 0, len(payload)) + payload


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def pattern(label: str, size: int) -> bytes:
    """``size`` bytes of valid protobuf: field 1 (bytes) holding the label, then dots."""
    length = size - 2
    while 1 + len(varint(length)) + length > size:
        length -= 1
    return b"\x0a" + varint(length) + label.encode().ljust(length, b".")[:length]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    method: str
    """Full method path, ``/bench.Svc/<Name>``."""
    request: bytes
    responses: tuple[bytes, ...]
    """Response messages in order (one for unary)."""

    @property
    def streaming(self) -> bool:
        return len(self.responses) > 1

    @property
    def response_body(self) -> bytes:
        """The framed response, as the backend serves it."""
        return b"".join(frame(message) for message in self.responses)

    @property
    def request_body(self) -> bytes:
        return frame(self.request)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="unary-100B",
        title="small unary (100 B request, 100 B response)",
        method=f"/{SERVICE}/Small",
        request=pattern("small request", 100),
        responses=(pattern("small response", 100),),
    ),
    Workload(
        name="unary-10KiB",
        title="10 KiB unary (10 KiB request, 10 KiB response)",
        method=f"/{SERVICE}/Large",
        request=pattern("large request", 10 * 1024),
        responses=(pattern("large response", 10 * 1024),),
    ),
    Workload(
        name="stream-1000",
        title=f"server streaming ({STREAM_MESSAGES} x 100 B messages per call)",
        method=f"/{SERVICE}/Stream",
        request=pattern("stream request", 100),
        responses=tuple(pattern(f"message {i:04d}", 100) for i in range(STREAM_MESSAGES)),
    ),
)

BY_NAME = {workload.name: workload for workload in WORKLOADS}

PROBES: tuple[Workload, ...] = (
    Workload(
        name="unary-5MiB",
        title="one 5 MiB unary call (5 MiB request, 5 MiB response)",
        method=f"/{SERVICE}/Huge",
        request=pattern("huge request", 5 * 1024 * 1024),
        responses=(pattern("huge response", 5 * 1024 * 1024),),
    ),
    Workload(
        name="not-protobuf",
        title="one unary call whose bodies are not protobuf",
        method=f"/{SERVICE}/Raw",
        request=b"\xff raw request, not protobuf",
        responses=(b"\xff raw response, not protobuf",),
    ),
)
"""Calls made once per configuration to show what each does with them (not measured)."""


def write_backend_files(www: Path) -> None:
    """Lay out ``www/bench.Svc/<Method>`` files holding each workload's framed response."""
    for workload in (*WORKLOADS, *PROBES):
        path = www / workload.method.strip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(workload.response_body)


def write_request_files(directory: Path) -> dict[str, Path]:
    """One framed request body per workload, for ``h2load -d``."""
    paths = {}
    for workload in WORKLOADS:
        path = directory / f"{workload.name}.request"
        path.write_bytes(workload.request_body)
        paths[workload.name] = path
    return paths
