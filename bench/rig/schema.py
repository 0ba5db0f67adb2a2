"""The bench service's schema as a FileDescriptorSet, written at run time (never committed).

`bench cost` writes it into its work directory and puts its path wherever a variant's options
say ``{descriptor_set}``, e.g. ``--variant descset='--proto-descriptor-set {descriptor_set}'``:
gproxy-mp then serves the bench's unary methods on its unary path.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

from bench.rig.workloads import SERVICE, WORKLOADS

PLACEHOLDER = "{descriptor_set}"


def descriptor_set() -> bytes:
    """`bench.Svc` with every workload's method; streaming ones server-streaming."""
    package, _, service = SERVICE.rpartition(".")
    proto = descriptor_pb2.FileDescriptorProto(name="bench.proto", package=package)
    proto.message_type.add(name="Bytes").field.add(
        name="data", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    svc = proto.service.add(name=service)
    for workload in WORKLOADS:
        svc.method.add(name=workload.method.rpartition("/")[2],
                       input_type=f".{package}.Bytes", output_type=f".{package}.Bytes",
                       server_streaming=workload.streaming)
    return descriptor_pb2.FileDescriptorSet(file=[proto]).SerializeToString()


def with_descriptor_set(variants: dict[str, list[str]], work: Path) -> dict[str, list[str]]:
    """`variants` with ``{descriptor_set}`` replaced by a set written into `work` (only
    written when some variant asks for it)."""
    if not any(PLACEHOLDER in option for options in variants.values() for option in options):
        return variants
    path = work / "bench.pb"
    path.write_bytes(descriptor_set())
    return {name: [option.replace(PLACEHOLDER, str(path)) for option in options]
            for name, options in variants.items()}
