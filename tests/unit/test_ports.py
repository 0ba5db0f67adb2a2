"""Reserving listen addresses: prove each is free, then hold it for this instance's workers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gproxy_mp.config import ListenAddress
from gproxy_mp.errors import AddressInUseError
from gproxy_mp.supervisor.ports import reserve_listen_address

NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")


@pytest.fixture
def reserved() -> Iterator[tuple[ListenAddress, socket.socket]]:
    """A reservation of a loopback port the kernel chose."""
    sock = reserve_listen_address(ListenAddress("127.0.0.1", 0))
    try:
        yield ListenAddress("127.0.0.1", sock.getsockname()[1]), sock
    finally:
        sock.close()


def test_a_second_reservation_of_a_held_address_is_refused_naming_it(
    reserved: tuple[ListenAddress, socket.socket],
) -> None:
    listen, _ = reserved
    with pytest.raises(AddressInUseError) as caught:
        reserve_listen_address(listen)
    assert str(listen) in str(caught.value)
    assert "already in use" in str(caught.value)


def test_a_worker_socket_with_reuseport_can_join_a_reservation(
    reserved: tuple[ListenAddress, socket.socket],
) -> None:
    listen, _ = reserved
    with socket.socket() as worker:
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind((listen.host, listen.port))
        worker.listen()


def test_a_reservation_never_accepts_connections(
    reserved: tuple[ListenAddress, socket.socket],
) -> None:
    listen, _ = reserved
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect((listen.host, listen.port))


def test_an_address_is_free_again_once_its_reservation_is_closed() -> None:
    sock = reserve_listen_address(ListenAddress("127.0.0.1", 0))
    listen = ListenAddress("127.0.0.1", sock.getsockname()[1])
    sock.close()
    reserve_listen_address(listen).close()


def test_a_port_held_by_another_programs_listening_socket_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        listen = ListenAddress("127.0.0.1", other.getsockname()[1])
        with pytest.raises(AddressInUseError) as caught:
            reserve_listen_address(listen)
    assert str(listen) in str(caught.value)


def test_a_port_held_by_another_programs_reuseport_socket_is_refused() -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        listen = ListenAddress("127.0.0.1", other.getsockname()[1])
        with pytest.raises(AddressInUseError):
            reserve_listen_address(listen)


@pytest.mark.skipif(NONLOCAL_BIND.exists() and NONLOCAL_BIND.read_text().strip() == "1",
                    reason="this host lets sockets bind addresses it does not have")
def test_an_address_not_of_this_host_is_refused_naming_it() -> None:
    listen = ListenAddress("192.0.2.1", 5000)  # TEST-NET-1: never assigned to a host
    with pytest.raises(AddressInUseError) as caught:
        reserve_listen_address(listen).close()
    assert "192.0.2.1:5000 is not an address of this host" in str(caught.value)
