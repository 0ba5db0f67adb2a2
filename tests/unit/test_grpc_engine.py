"""--grpc-engine: which engines are accepted, and the environment each gives a worker."""

from __future__ import annotations

import pytest

from gproxy_mp.errors import ConfigError
from gproxy_mp.grpc_engine import check_grpc_engine, worker_environment

IOMGR = "-event_engine_client,-event_engine_listener,-event_engine_for_all_other_endpoints"


def test_iomgr_switches_the_event_engine_experiments_off_and_keeps_the_rest() -> None:
    env = worker_environment("iomgr", {"PATH": "/bin", "GPROXY_WORKERS": "2"})
    assert env == {"PATH": "/bin", "GPROXY_WORKERS": "2", "GRPC_EXPERIMENTS": IOMGR,
                   "GRPC_VERBOSITY": "ERROR"}


def test_a_users_own_experiments_come_last_so_they_win() -> None:
    env = worker_environment("iomgr", {"GRPC_EXPERIMENTS": "event_engine_client, "})
    assert env["GRPC_EXPERIMENTS"] == f"{IOMGR},event_engine_client"
    assert worker_environment("iomgr", {"GRPC_EXPERIMENTS": ""})["GRPC_EXPERIMENTS"] == IOMGR


def test_event_engine_leaves_the_experiments_as_they_are() -> None:
    environ = {"PATH": "/bin", "GRPC_EXPERIMENTS": "tcp_rcv_lowat"}
    env = worker_environment("event-engine", environ)
    assert env == environ | {"GRPC_VERBOSITY": "ERROR"}
    assert environ == {"PATH": "/bin", "GRPC_EXPERIMENTS": "tcp_rcv_lowat"}  # a copy


def test_grpc_cores_own_log_lines_are_errors_only_unless_the_user_says_otherwise() -> None:
    assert worker_environment("iomgr", {})["GRPC_VERBOSITY"] == "ERROR"
    assert worker_environment("iomgr", {"GRPC_VERBOSITY": "debug"})["GRPC_VERBOSITY"] == "debug"


def test_unknown_engines_are_refused() -> None:
    assert check_grpc_engine("event-engine") == "event-engine"
    with pytest.raises(ConfigError, match="expected one of iomgr, event-engine"):
        check_grpc_engine("epoll")
