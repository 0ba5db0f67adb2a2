"""`--proto-descriptor-set` decoding and merging, on plain data."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from gproxy_mp.descriptors import (
    DescriptorSet,
    descriptor_set,
    merge,
    method_shapes,
    read_descriptor_set,
    startup_summary,
    unary_sources,
)
from gproxy_mp.errors import ConfigError
from gproxy_mp.worker.reflection import MethodShapes


def serialized(package: str, service: str, **methods: tuple[bool, bool]) -> bytes:
    """A FileDescriptorSet of one file: `Method=(client_streaming, server_streaming)`."""
    proto = descriptor_pb2.FileDescriptorProto(name=f"{service}.proto", package=package)
    svc = proto.service.add(name=service)
    for name, (client, server) in methods.items():
        svc.method.add(name=name, input_type=".x.M", output_type=".x.M",
                       client_streaming=client, server_streaming=server)
    return descriptor_pb2.FileDescriptorSet(file=[proto]).SerializeToString()


def test_only_methods_streaming_neither_way_are_unary() -> None:
    data = serialized("pkg.v1", "Svc", Get=(False, False), Up=(True, False),
                      Down=(False, True), Chat=(True, True))
    assert method_shapes(data) == {"/pkg.v1.Svc/Get": True, "/pkg.v1.Svc/Up": False,
                                   "/pkg.v1.Svc/Down": False, "/pkg.v1.Svc/Chat": False}


def test_a_file_without_package_names_the_service_alone() -> None:
    assert method_shapes(serialized("", "Svc", Get=(False, False))) == {"/Svc/Get": True}


@pytest.mark.parametrize("data", [b"", b"not a descriptor set\n", b"\x00\x01\x02",
                                  descriptor_pb2.FileDescriptorProto(name="a.proto")
                                  .SerializeToString()[:3]])
def test_what_is_not_a_file_descriptor_set_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a FileDescriptorSet"):
        method_shapes(data)


def test_a_method_any_set_declares_streaming_is_never_unary() -> None:
    one = descriptor_set("a.pb", serialized("p", "S", Get=(False, False), Put=(False, False)))
    two = descriptor_set("b.pb", serialized("p", "S", Put=(True, False)))
    assert merge([one, two]) == (frozenset({"/p.S/Get"}), frozenset({"/p.S/Put"}))


def test_sources_name_the_first_that_made_a_method_unary() -> None:
    one = DescriptorSet("a.pb", unary=("/p.S/A", "/p.S/B"), streaming=())
    two = DescriptorSet("b.pb", unary=("/p.S/B", "/p.S/C"), streaming=("/p.S/D",))
    assert unary_sources(["/p.S/A"], [one, two]) == [
        {"method": "/p.S/A", "source": "--unary-methods"},
        {"method": "/p.S/B", "source": "descriptor set a.pb"},
        {"method": "/p.S/C", "source": "descriptor set b.pb"},
    ]
    assert startup_summary(["/p.S/A"], [one, two], learning=False) == (
        "unary methods: 1 declared (--unary-methods), 1 from descriptor set a.pb, "
        "1 from descriptor set b.pb, reflection: off")


def test_unreadable_files_are_config_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.pb"):
        read_descriptor_set(str(tmp_path / "missing.pb"))
    garbage = tmp_path / "garbage.pb"
    garbage.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"garbage\.pb: not a FileDescriptorSet"):
        read_descriptor_set(str(garbage))


def test_reflection_and_descriptor_sets_veto_each_other() -> None:
    """The worker seeds `MethodShapes` with the sets' shapes; a backend's reflection answer
    then merges under the same rule, either way round."""
    shapes = MethodShapes({"/p.S/Get", "/p.S/Put"}, {"/p.S/Up"})
    shapes.learn({"/p.S/Up": True, "/p.S/Put": False, "/p.S/New": True})
    assert shapes.unary_methods() == {"/p.S/Get", "/p.S/New"}
