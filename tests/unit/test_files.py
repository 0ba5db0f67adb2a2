"""The bounded file reader: whole files within the bound, one line naming the option and the
bound beyond it, and an endless file refused at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gproxy_mp.errors import ConfigError
from gproxy_mp.files import (
    CHUNK,
    KUBECONFIG_LIMIT,
    FileReadError,
    MiB,
    describe_limit,
    read_bounded,
)
from gproxy_mp.supervisor.resolvers.kubeapi import load_configuration

LIMIT = 3 * CHUNK + 17


@pytest.mark.parametrize("size", [0, 1, CHUNK, LIMIT - 1, LIMIT])
def test_a_file_within_the_bound_is_read_whole(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert read_bounded(tmp_path / "f", option="--x", limit=LIMIT) == data


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT])
def test_a_file_past_the_bound_is_one_line_naming_the_option_the_file_and_the_bound(
    size: int, tmp_path: Path,
) -> None:
    (tmp_path / "big").write_bytes(b"x" * size)
    with pytest.raises(FileReadError) as refused:
        read_bounded(tmp_path / "big", option="--x", limit=LIMIT)
    message = str(refused.value)
    assert message.startswith("--x ") and str(tmp_path / "big") in message, message
    assert describe_limit(LIMIT) in message and "\n" not in message, message


def test_an_endless_file_is_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(FileReadError, match=r"--x '/dev/zero': larger than the 64 MiB"):
        read_bounded("/dev/zero", option="--x", limit=64 * MiB)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("name", ["missing", "directory"])
def test_a_file_that_cannot_be_read_names_the_option_and_why(name: str, tmp_path: Path) -> None:
    (tmp_path / "directory").mkdir()
    with pytest.raises(FileReadError, match=rf"^--x '.*{name}': .+$"):
        read_bounded(tmp_path / name, option="--x", limit=LIMIT)


def test_a_pipe_that_delivers_in_pieces_is_read_to_its_end() -> None:
    reader, writer = os.pipe()
    try:
        for piece in (b"one ", b"two ", b"three"):
            os.write(writer, piece)
        os.close(writer)
        writer = -1
        assert read_bounded(f"/dev/fd/{reader}", option="--x", limit=LIMIT) == b"one two three"
    finally:
        os.close(reader)
        if writer >= 0:
            os.close(writer)


def test_a_refused_file_is_a_usage_error() -> None:
    assert issubclass(FileReadError, ConfigError)


@pytest.mark.parametrize(("limit", "said"), [
    (64 * MiB, "64 MiB"), (1024, "1 KiB"), (1536, "1536 bytes"), (100, "100 bytes"),
])
def test_bounds_are_told_in_the_largest_unit_that_divides_them(limit: int, said: str) -> None:
    assert describe_limit(limit) == said


def test_a_kubeconfig_past_its_bound_is_refused_before_the_client_reads_it(
    tmp_path: Path,
) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_text("apiVersion: v1\nkind: Config\n")
    big.write_bytes(b"#" * (KUBECONFIG_LIMIT + 1))
    with pytest.raises(FileReadError, match=rf"^--kubeconfig '{big}': larger than the 4 MiB"):
        load_configuration(f"{small}:{big}")  # a list, as the client splits it
