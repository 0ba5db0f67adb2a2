"""DURATION, --workers and LISTEN: the scalar values of the command line."""

from __future__ import annotations

import os
import re

import pytest

from gproxy_mp.config import (
    MAX_DURATION,
    MAX_WORKERS_PER_CPU,
    ListenAddress,
    check_workers,
    parse_connect_timeout,
    parse_connection_age,
    parse_duration,
    parse_listen,
    parse_max_concurrent_streams,
    parse_unary_methods,
    parse_worker_timeout,
    parse_workers,
    usable_cpus,
    workers_warning,
)
from gproxy_mp.errors import ConfigError, ExitCode

DURATIONS = [
    ("300ms", 0.3),
    ("1m30s", 90.0),
    ("0s", 0.0),
    ("1h2m3.5s", 3723.5),
    ("2.5", 2.5),
    ("0", 0.0),
    (" 5s ", 5.0),
    ("1500us", 0.0015),
    (".5s", 0.5),
]

BAD_DURATIONS = ["abc", "-1", "5x", "inf", "nan", "", "1m30", "-1s", "5 s"]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_durations_read_as_go_durations_or_plain_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_a_bad_duration_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text)
    assert repr(text.strip()) in str(caught.value)


def test_config_errors_are_usage_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration("soon")
    assert caught.value.exit_code == ExitCode.USAGE


def test_auto_workers_are_the_cpus_this_process_may_run_on() -> None:
    assert parse_workers("auto") == len(os.sched_getaffinity(0))
    assert parse_workers("AUTO") == parse_workers("auto")


def test_a_worker_count_is_read_as_an_integer() -> None:
    assert parse_workers("4") == 4


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5", ""])
def test_a_worker_count_below_one_or_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_workers(text)
    assert repr(text) in str(caught.value)


LISTENS = [
    ("127.0.0.1:5000", ListenAddress("127.0.0.1", 5000), "127.0.0.1:5000"),
    ("my-host:5000", ListenAddress("my-host", 5000), "my-host:5000"),
    ("[::1]:5000", ListenAddress("::1", 5000), "[::1]:5000"),
    (":5000", ListenAddress("", 5000), "[::]:5000"),
    ("localhost:65535", ListenAddress("localhost", 65535), "localhost:65535"),
]


@pytest.mark.parametrize(("text", "listen", "bind_address"), LISTENS)
def test_listen_addresses_are_host_port_bracketed_v6_or_all_interfaces(
    text: str, listen: ListenAddress, bind_address: str
) -> None:
    assert parse_listen(text) == listen
    assert listen.bind_address == bind_address


@pytest.mark.parametrize("text", [text for text, _, _ in LISTENS])
def test_a_listen_address_prints_as_it_was_written(text: str) -> None:
    assert str(parse_listen(text)) == text


BAD_LISTENS = [
    (":0", "out of range"),
    (":65536", "out of range"),
    ("127.0.0.1:abc", "not a number"),
    ("fe80::1:5000", "need brackets"),
    ("2001:db8::1:5000", "need brackets"),
    ("[::1]5000", "expected [ipv6]:port"),
    ("[nope]:5000", "not an IPv6 address"),
    ("127.0.0.1", "missing port"),
    ("127.0.0.1:", "missing port"),
    (":", "not a number"),
    ("-bad-:5000", "not a valid host name"),
    ("a..b:5000", "not a valid host name"),
]


@pytest.mark.parametrize(("text", "complaint"), BAD_LISTENS)
def test_a_bad_listen_address_is_refused_naming_it(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_listen(text)
    assert repr(text) in str(caught.value)
    assert complaint in str(caught.value)


def test_a_port_of_superscript_digits_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_listen(":²")


def test_an_unbracketed_loopback_v6_listen_address_is_told_to_use_brackets() -> None:
    with pytest.raises(ConfigError, match="need brackets"):
        parse_listen("::1:5000")


@pytest.mark.parametrize(("affinity", "cpu_max", "expected"), [
    (64, None, 64),
    (64, "max 100000", 64),
    (64, "150000 100000", 2),  # a 1.5 CPU limit: 2 workers
    (64, "50000 100000", 1),
    (2, "800000 100000", 2),  # the affinity is smaller than the quota
    (4, "garbage", 4),
])
def test_auto_workers_respect_a_container_cpu_limit(affinity: int, cpu_max: str | None,
                                                    expected: int) -> None:
    assert usable_cpus(affinity, cpu_max) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("/pkg.Svc/Get", ("/pkg.Svc/Get",)),
    ("/pkg.Svc/Get, /pkg.v1.Other/*", ("/pkg.Svc/Get", "/pkg.v1.Other/*")),
    ("", ()),
])
def test_unary_methods_are_full_method_names_or_a_whole_service(
        text: str, expected: tuple[str, ...]) -> None:
    assert parse_unary_methods(text) == expected


@pytest.mark.parametrize("text", ["Get", "pkg.Svc/Get", "/pkg.Svc/", "/pkg.Svc/Get/x", "/*/Get"])
def test_a_malformed_unary_method_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match=r"expected /package\.Service/Method"):
        parse_unary_methods(text)


@pytest.mark.parametrize(("text", "seconds"), [
    ("off", None), ("OFF", None), ("0", None), ("0s", None), ("infinite", None),
    ("100ms", 0.1), ("30m", 1800.0), ("2.5", 2.5),
])
def test_a_connection_age_is_a_duration_or_off(text: str, seconds: float | None) -> None:
    assert parse_connection_age(text) == seconds


@pytest.mark.parametrize("text", ["50ms", "abc", "-1s"])
def test_a_connection_age_too_short_or_malformed_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        parse_connection_age(text)


# gRPC keeps connection ages as int32 milliseconds: 597h overflowed in every worker
# (OverflowError, exit 1) after passing validation and --check.
@pytest.mark.parametrize("text", ["597h", "1e300", "596h31m24s", "99999999999"])
def test_a_duration_beyond_what_its_consumers_accept_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must be at most 596h31m23s"):
        parse_duration(text)
    with pytest.raises(ConfigError, match=r"must be at most 596h31m23s"):
        parse_connection_age(text)


def test_the_longest_duration_is_accepted() -> None:
    assert parse_duration("596h31m23s") == 2147483.0
    assert MAX_DURATION * 1000 <= 2**31 - 1


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("1000", 1000), ("2147483647", 2**31 - 1)])
def test_max_concurrent_streams_is_a_positive_int32(text: str, count: int) -> None:
    assert parse_max_concurrent_streams(text) == count


@pytest.mark.parametrize("text", ["0", "-5", "2147483648", "lots", "1.5"])
def test_a_bad_max_concurrent_streams_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        parse_max_concurrent_streams(text)


def test_a_worker_timeout_is_a_duration_of_at_least_two_seconds() -> None:
    assert parse_worker_timeout("10s") == 10.0
    with pytest.raises(ConfigError, match="at least 2s"):
        parse_worker_timeout("1s")


@pytest.mark.parametrize(("text", "seconds"), [("2s", 2.0), ("100ms", 0.1), ("1m", 60.0)])
def test_a_connect_timeout_is_a_duration(text: str, seconds: float) -> None:
    assert parse_connect_timeout(text) == seconds


@pytest.mark.parametrize("text", ["0s", "50ms", "abc"])
def test_a_connect_timeout_too_short_or_malformed_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        parse_connect_timeout(text)


WORKER_COUNTS = [  # (--workers, usable CPUs, refused, warned)
    (1, 1, False, False),
    (2, 2, False, False),
    (3, 2, False, True),
    (8, 2, False, True),
    (9, 2, True, False),
    (999, 2, True, False),
    (4, 1, False, True),
    (5, 1, True, False),
    (256, 64, False, True),
]


@pytest.mark.parametrize(("count", "cpus", "refused", "warned"), WORKER_COUNTS)
def test_more_workers_than_a_multiple_of_the_usable_cpus_are_refused_and_above_them_warned(
    count: int, cpus: int, refused: bool, warned: bool
) -> None:
    if refused:
        with pytest.raises(ConfigError) as caught:
            check_workers(count, cpus=cpus)
        assert f"'{count}'" in str(caught.value)
        assert f"at most {MAX_WORKERS_PER_CPU * cpus}" in str(caught.value)
        assert f"{cpus} CPU" in str(caught.value)
        return
    check_workers(count, cpus=cpus)
    warning = workers_warning(count, cpus=cpus)
    assert (warning is not None) == warned
    if warning is not None:
        assert str(count) in warning and f"{cpus} CPU" in warning
