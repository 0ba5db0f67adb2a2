"""The core plan of `python -m bench scaling`: which cores the proxy, the backends and h2load
get, which worker counts run, and when the plan has to overlap the roles; and which proxies
each step runs: gproxy-mp on each data plane, with the rig's command lines."""

from __future__ import annotations

import sys

import pytest

from bench.rig import configs
from bench.scaling.main import parse_args
from bench.scaling.plan import (
    CorePlan,
    cpu_list,
    parse_cpu_list,
    physical_cores,
    plan_cores,
    worker_counts,
)
from bench.scaling.proxies import gproxy_argv, mapped_plane, proxies_for


def test_eight_cores_give_the_proxy_four_and_each_other_role_two() -> None:
    plan = plan_cores(range(8))
    assert plan == CorePlan(proxy=(0, 1, 2, 3), backends=(4, 5), loadgen=(6, 7),
                            worker_counts=(1, 2, 4), overlapped=False)
    assert plan.proxy_cores(2) == (0, 1)
    assert plan.describe().startswith("separate cores: proxy on cores 0,1,2,3, backends on 4,5")


def test_roles_never_share_a_core_when_there_are_enough() -> None:
    for count in (3, 4, 5, 6, 7, 16, 33, 64, 96):
        plan = plan_cores(range(count))
        roles = [set(plan.proxy), set(plan.backends), set(plan.loadgen)]
        assert all(roles), count
        assert set().union(*roles) == set(range(count)), count
        assert sum(map(len, roles)) == count, count  # disjoint
        assert not plan.overlapped, count
        assert plan.worker_counts[-1] == len(plan.proxy), count


def test_the_usable_cpus_are_taken_as_given_not_as_zero_to_n() -> None:
    plan = plan_cores({9, 3, 5, 7, 11, 13, 15, 1})  # e.g. a cpuset of odd cores
    assert plan.proxy == (1, 3, 5, 7)
    assert plan.backends == (9, 11)
    assert plan.loadgen == (13, 15)


def test_worker_counts_double_and_end_at_the_core_count() -> None:
    assert worker_counts(1) == (1,)
    assert worker_counts(8) == (1, 2, 4, 8)
    assert worker_counts(12) == (1, 2, 4, 8, 12)
    assert worker_counts(32, max_workers=8) == (1, 2, 4, 8)
    assert worker_counts(32, max_workers=6) == (1, 2, 4, 6)


def test_two_cores_overlap_every_role_and_say_so() -> None:
    plan = plan_cores({0, 1})
    assert plan.overlapped
    assert plan.proxy == plan.backends == plan.loadgen == (0, 1)
    assert plan.worker_counts == (1, 2)
    assert "NOT scaling" in plan.describe()
    assert plan_cores({0}).worker_counts == (1,)


def test_max_workers_caps_the_steps() -> None:
    assert plan_cores(range(64), max_workers=2).worker_counts == (1, 2)


def test_a_step_cannot_have_more_workers_than_the_proxy_has_cores() -> None:
    with pytest.raises(ValueError, match="3 workers"):
        plan_cores(range(4)).proxy_cores(3)
    with pytest.raises(ValueError, match="no usable CPU"):
        plan_cores([])


def test_cpu_list_is_tasksets_form() -> None:
    assert cpu_list((0, 2, 5)) == "0,2,5"


def intel_smt(physical: int) -> dict[int, frozenset[int]]:
    """Siblings as Linux numbers them on a typical x86 box: CPU n and n + physical share a
    core."""
    return {cpu: frozenset({cpu % physical, cpu % physical + physical})
            for cpu in range(2 * physical)}


def test_with_smt_the_proxy_gets_one_cpu_per_physical_core_and_no_role_shares_one() -> None:
    siblings = intel_smt(8)  # 16 CPUs, 8 physical cores
    plan = plan_cores(range(16), siblings=siblings)
    assert plan.proxy == (0, 1, 2, 3)
    assert plan.unused == (8, 9, 10, 11)
    assert plan.backends == (4, 12, 5, 13)
    assert plan.loadgen == (6, 14, 7, 15)
    assert plan.worker_counts == (1, 2, 4)
    assert not plan.overlapped
    roles = [plan.proxy + plan.unused, plan.backends, plan.loadgen]
    for one in roles:  # no physical core hosts two roles
        for other in roles:
            if one is not other:
                assert not {siblings[c] for c in one} & {siblings[c] for c in other}
    assert "SMT siblings 8,9,10,11 idle" in plan.describe()


def test_smt_with_too_few_physical_cores_overlaps_and_says_why() -> None:
    plan = plan_cores(range(4), siblings=intel_smt(2))  # 4 CPUs, 2 physical cores
    assert plan.overlapped
    assert plan.proxy == (0, 1)
    assert "only 2 physical core(s)" in plan.describe()
    assert "NOT scaling" in plan.describe()


def test_physical_cores_keep_only_usable_cpus() -> None:
    assert physical_cores({0, 1, 4}, intel_smt(4)) == [(0, 4), (1,)]
    assert physical_cores({2, 0}, {}) == [(0,), (2,)]


def test_parse_cpu_list_reads_the_kernels_form() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("5") == {5}


def test_both_data_planes_run_by_default_beside_nginx() -> None:
    assert parse_args([]).data_planes == ["grpcio", "native"]
    assert proxies_for(["grpcio", "native"], None) == ["gproxy", "gproxy-native", "nginx"]
    assert proxies_for(["native"], "/bin/gproxy") == ["gproxy-native", "nginx", "go-gproxy"]
    assert proxies_for(["native", "grpcio"], None)[:2] == ["gproxy", "gproxy-native"]
    assert parse_args(["--data-planes", "native"]).data_planes == ["native"]
    assert parse_args(["--smoke"]).data_planes == ["grpcio", "native"]


@pytest.mark.parametrize("planes", ["", "grpcio,rust", "native,"])
def test_data_planes_are_checked(planes: str, capsys: pytest.CaptureFixture[str]) -> None:
    if planes == "native,":  # a trailing comma is harmless
        assert parse_args(["--data-planes", planes]).data_planes == ["native"]
        return
    with pytest.raises(SystemExit):
        parse_args(["--data-planes", planes])
    assert "--data-planes" in capsys.readouterr().err


def test_each_plane_runs_the_rigs_command_line_with_its_data_plane_named() -> None:
    backends = ["127.0.0.1:1", "127.0.0.1:2"]
    rig = configs.gproxy_argv(sys.executable, port=9, backends=backends, workers=4)
    assert "--data-plane" not in rig  # a --baseline checkout's: its own default
    admin = ["--admin-address", "127.0.0.1:8"]
    assert gproxy_argv("gproxy", port=9, backends=backends, workers=4,
                       admin="127.0.0.1:8") == [*rig, "--data-plane", "grpcio", *admin]
    assert gproxy_argv("gproxy-native", port=9, backends=backends, workers=4,
                       admin="127.0.0.1:8") == [*rig, "--data-plane", "native", *admin]


def test_a_workers_memory_map_names_its_data_plane() -> None:
    native = "7f00-7f10 r-xp 0 08:01 5 /opt/gproxy-mp/gproxy_mp/_native.abi3.so\n"
    grpcio = "7f00-7f10 r-xp 0 08:01 6 /venv/grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so\n"
    assert mapped_plane(native) == "native"
    assert mapped_plane(grpcio) == "grpcio"
    assert mapped_plane(native + grpcio) == "grpcio"  # grpc loaded: not a native-only worker
    assert mapped_plane("7f00-7f10 r-xp 0 08:01 7 /usr/lib/libc.so.6\n") == "?"
