"""`--proto-descriptor-set`: methods a FileDescriptorSet declares unary take the unary path.

As in test_unary_learning, the set lies (it declares ``ClientStream`` unary): a
client-streaming call of three messages then reaches the backend as one message, because the
worker serves the method with a unary handler. The backends offer no reflection.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from harness import client
from harness.admin import admin_get
from harness.fixtures import grpcio_plane
from harness.peers import Launcher, Proxy, proxy_args, route
from harness.processes import free_port

pytestmark = pytest.mark.timeout(120)

MESSAGES = [b"one", b"two", b"three"]
METHOD = "/test.Echo/ClientStream"


def write_set(path: Path, *, client_streaming: bool) -> Path:
    proto = descriptor_pb2.FileDescriptorProto(name="echo.proto", package="test")
    proto.service.add(name="Echo").method.add(
        name="ClientStream", input_type=".test.M", output_type=".test.M",
        client_streaming=client_streaming)
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[proto]).SerializeToString())
    return path


def start(launcher: Launcher, proxies: Callable[..., Proxy], *extra: str,
          admin: str = "off") -> tuple[Proxy, str]:
    backend = launcher.start_backend("b0")
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backend), workers=2, admin_address=admin), *extra)
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    return proxy, address


@grpcio_plane
def test_methods_a_descriptor_set_declares_unary_are_served_unary(
    launcher: Launcher, proxies: Callable[..., Proxy], tmp_path: Path,
) -> None:
    lying = write_set(tmp_path / "echo.pb", client_streaming=False)
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = start(launcher, proxies, "--proto-descriptor-set", str(lying), admin=admin)
    with client.open_channel(address) as channel:
        for _ in range(4):  # every worker, whichever accepted the connection
            assert client.client_stream(channel, MESSAGES)[0] == 1, proxy.output()
    assert f"1 from descriptor set {lying}" in proxy.output()
    view = json.loads(admin_get(admin, "/debug/endpoints"))
    assert view["unary_methods"] == [{"method": METHOD, "source": f"descriptor set {lying}"}]


@grpcio_plane
def test_a_method_another_set_declares_streaming_stays_transparent(
    launcher: Launcher, proxies: Callable[..., Proxy], tmp_path: Path,
) -> None:
    lying = write_set(tmp_path / "lying.pb", client_streaming=False)
    honest = write_set(tmp_path / "honest.pb", client_streaming=True)
    proxy, address = start(launcher, proxies, "--proto-descriptor-set",
                           f"{lying},{honest}")
    with client.open_channel(address) as channel:
        for _ in range(4):
            assert client.client_stream(channel, MESSAGES)[0] == len(MESSAGES), proxy.output()


@pytest.mark.parametrize("name", ["missing.pb", "garbage.pb", "unreadable"])
def test_unusable_descriptor_sets_are_one_line_and_exit_2_at_start(
    name: str, tmp_path: Path,
) -> None:
    (tmp_path / "garbage.pb").write_text("not a descriptor set\n")
    (tmp_path / "unreadable").mkdir()  # a directory: reading it fails
    good = write_set(tmp_path / "good.pb", client_streaming=False)
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "-p", f"127.0.0.1:{free_port()}-static:///a:1",
         "--admin-address", "off", "--proto-descriptor-set", str(good),
         "--proto-descriptor-set", str(tmp_path / name)],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert "--proto-descriptor-set" in lines[0] and name in lines[0], lines
