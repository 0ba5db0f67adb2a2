"""Which methods are unary, read from FileDescriptorSets (`--proto-descriptor-set`).

A FileDescriptorSet is what `protoc --descriptor_set_out` or `buf build -o` writes: the
schema of every service, each method saying whether its client or server streams. Pure: the
file is read once by `read_descriptor_set` (at most `files.DESCRIPTOR_SET_LIMIT` bytes);
`method_shapes` and `merge` take plain data.

The safety rule is the one `worker/reflection.py` applies between backends: a method any
source declares streaming is never unary (`worker.reflection.MethodShapes`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from gproxy_mp.errors import ConfigError
from gproxy_mp.files import DESCRIPTOR_SET_LIMIT, read_bounded

OPTION = "--proto-descriptor-set"


@dataclass(frozen=True, slots=True)
class DescriptorSet:
    """One file's methods, by shape."""

    path: str
    unary: tuple[str, ...]
    streaming: tuple[str, ...]


def method_shapes(data: bytes) -> dict[str, bool]:
    """`{"/pkg.Service/Method": unary?}` for every method of a serialized FileDescriptorSet;
    ValueError when `data` is not one."""
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as e:
        raise ValueError(f"not a FileDescriptorSet ({e})") from None
    if not files.file or len(UnknownFieldSet(files)) or not all(f.name for f in files.file):
        raise ValueError("not a FileDescriptorSet (protoc --descriptor_set_out, buf build -o)")
    shapes: dict[str, bool] = {}
    for proto in files.file:
        shapes.update(file_shapes(proto))
    return shapes


def file_shapes(proto: descriptor_pb2.FileDescriptorProto,
                services: Collection[str] | None = None) -> dict[str, bool]:
    """`{"/pkg.Service/Method": unary?}` for one file's services (those in `services` only,
    when given)."""
    prefix = f"{proto.package}." if proto.package else ""
    shapes: dict[str, bool] = {}
    for service in proto.service:
        if services is not None and prefix + service.name not in services:
            continue
        for method in service.method:
            unary = not (method.client_streaming or method.server_streaming)
            shapes[f"/{prefix}{service.name}/{method.name}"] = unary
    return shapes


def descriptor_set(path: str, data: bytes) -> DescriptorSet:
    shapes = method_shapes(data)
    return DescriptorSet(path, tuple(sorted(m for m, unary in shapes.items() if unary)),
                         tuple(sorted(m for m, unary in shapes.items() if not unary)))


def read_descriptor_set(path: str) -> DescriptorSet:
    """The file's methods; ConfigError naming the file when it is unreadable, larger than
    `DESCRIPTOR_SET_LIMIT` or not a set."""
    data = read_bounded(path, option=OPTION, limit=DESCRIPTOR_SET_LIMIT)
    try:
        return descriptor_set(path, data)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_descriptor_sets(text: str) -> tuple[DescriptorSet, ...]:
    """`FILE[,FILE...]`, each read and decoded now."""
    return tuple(read_descriptor_set(p.strip()) for p in text.split(",") if p.strip())


def merge(sets: Iterable[DescriptorSet]) -> tuple[frozenset[str], frozenset[str]]:
    """(unary, streaming) over all sets: unary where some set says unary and none streaming."""
    unary: set[str] = set()
    streaming: set[str] = set()
    for one in sets:
        unary.update(one.unary)
        streaming.update(one.streaming)
    return frozenset(unary - streaming), frozenset(streaming)


def unary_sources(declared: Iterable[str], sets: Iterable[DescriptorSet]) -> list[dict[str, str]]:
    """`[{"method", "source"}]` for what the supervisor knows: `--unary-methods` (kept as the
    user declared it) and each set's unary methods that no set declares streaming."""
    sets = tuple(sets)
    unary, _ = merge(sets)
    rows = [{"method": m, "source": "--unary-methods"} for m in declared]
    seen = set(declared)
    for one in sets:
        for method in one.unary:
            if method in unary and method not in seen:
                seen.add(method)
                rows.append({"method": method, "source": f"descriptor set {one.path}"})
    return rows


def startup_summary(declared: Iterable[str], sets: Iterable[DescriptorSet],
                    learning: bool) -> str:
    """How many methods each source makes unary, for the start log."""
    declared, sets = tuple(declared), tuple(sets)
    sources = [row["source"] for row in unary_sources(declared, sets)]
    parts = [f"{len(declared)} declared (--unary-methods)"]
    parts += [f"{sources.count(f'descriptor set {one.path}')} from descriptor set {one.path}"
              for one in sets]
    parts.append("reflection: learned per worker, logged as learned" if learning
                 else "reflection: off")
    return "unary methods: " + ", ".join(parts)
