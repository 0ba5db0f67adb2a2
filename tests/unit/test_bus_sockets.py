"""The bus's private runtime directory, its addresses and the shared socket options."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq

from gproxy_mp.bus.sockets import (
    BusAddresses,
    configure_socket,
    create_runtime_dir,
    remove_runtime_dir,
)


def test_configuring_a_bus_socket_uses_no_deprecated_pyzmq_api() -> None:
    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    try:
        configure_socket(socket)
    finally:
        socket.close(linger=0)
        context.term()


def test_the_runtime_directory_is_private_and_removable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = create_runtime_dir()
    assert path.parent == tmp_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    (path / "updates").touch()
    remove_runtime_dir(path)
    assert not path.exists()


def test_the_runtime_directory_falls_back_to_the_temp_dir_without_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    path = create_runtime_dir()
    try:
        assert path.parent == tmp_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    finally:
        remove_runtime_dir(path)


def test_the_bus_addresses_are_ipc_sockets_in_the_runtime_directory(tmp_path: Path) -> None:
    addresses = BusAddresses(tmp_path)
    assert {addresses.updates, addresses.snapshot, addresses.status} == {
        f"ipc://{tmp_path}/updates", f"ipc://{tmp_path}/snapshot", f"ipc://{tmp_path}/status"}
