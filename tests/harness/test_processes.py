"""The harness's process life and process facts, on real processes and sockets: a group is
stopped whole even when its leader ignores SIGTERM, a bounded run reports what a hung command
wrote, and psutil names the listener and the holder of an accepted connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from harness import procfacts
from harness.processes import read_line, run_bounded, spawn, stop_group
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

STUBBORN = 'trap "" TERM; sleep 300 & echo $!; wait'
"""A shell that ignores SIGTERM, with a child, printing the child's pid."""


def test_stop_group_kills_a_leader_ignoring_sigterm_and_its_child() -> None:
    process = spawn(["sh", "-c", STUBBORN], stdout=subprocess.PIPE)
    assert process.stdout is not None
    child = int(read_line(process.stdout, timeout=10))
    child_id = procfacts.identify(child)
    assert child_id is not None and procfacts.children(process.pid) == [child]
    stop_group(process, timeout=1.0)
    process.stdout.close()
    assert process.returncode == -9
    assert wait_until(lambda: not procfacts.is_running(child_id), timeout=5)


def test_a_bounded_run_that_times_out_reports_what_it_wrote() -> None:
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        run_bounded(["sh", "-c", "echo started; exec sleep 300"], timeout=1.0)
    assert raised.value.output == "started\n"


def test_a_bounded_run_returns_its_output_and_code() -> None:
    done = run_bounded([sys.executable, "-c", "print('ok'); raise SystemExit(3)"], timeout=30)
    assert (done.returncode, done.stdout) == (3, "ok\n")


def test_the_listener_and_the_holder_of_an_accepted_connection_are_named() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert procfacts.listeners(port) == {os.getpid()}
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = server.accept()
            with accepted:
                held = procfacts.accepted_connections(port, [os.getpid()])
                assert held == {os.getpid(): 1}
    assert procfacts.listeners(port) == set()


def test_memory_and_cpu_of_this_process_are_read() -> None:
    memory = procfacts.read_memory(os.getpid())
    assert memory is not None and memory.rss_kib > 0
    assert memory.pss_kib is None or 0 < memory.pss_kib <= memory.rss_kib
    assert procfacts.cpu_seconds([os.getpid()]) > 0
