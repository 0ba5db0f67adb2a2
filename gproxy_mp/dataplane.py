"""Which options each data plane (`--data-plane`) does: the check that refuses the rest.

The native engine (`gproxy_mp._native`), the default, forwards h2c or TLS (either side,
rustls) with either balancer, locality rings (it ranks by the placement the bus carries, as
the grpcio plane does), health checks, retries, deadlines, limits and drain. Options that only
tune grpcio's machinery (unary handlers, its event loop, its I/O engine) mean nothing to it and
are refused with one line saying which plane they belong to, rather than accepted and
ignored; `--learn-unary-methods`, on by default, is simply not used there. Pure: no imports
of either plane.
"""

from __future__ import annotations

from gproxy_mp.config import WorkerOptions
from gproxy_mp.errors import ConfigError

NATIVE = "native"


def check_data_plane(worker: WorkerOptions) -> None:
    """Raise `ConfigError` naming the first option the chosen plane cannot honour."""
    if worker.data_plane != NATIVE:
        return
    grpcio_only = _grpcio_only(worker)
    if grpcio_only:
        raise ConfigError(f"{grpcio_only[0]} tunes the grpcio data plane only: leave it out "
                          "for the native plane (the default), or add --data-plane grpcio")


def _grpcio_only(worker: WorkerOptions) -> list[str]:
    refused: list[str] = []
    if worker.unary_methods:
        refused.append("--unary-methods")
    if worker.schema_unary_methods or worker.schema_streaming_methods:
        refused.append("--proto-descriptor-set")
    if worker.event_loop != "auto":
        refused.append(f"--event-loop {worker.event_loop}")
    if worker.grpc_engine != "iomgr":
        refused.append(f"--grpc-engine {worker.grpc_engine}")
    return refused
