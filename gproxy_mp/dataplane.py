"""Which options each data plane (`--data-plane`) does: the check that refuses the rest.

The native engine (`gproxy_mp._native`) forwards h2c or TLS (either side, rustls) with either
balancer, locality rings (it ranks by the placement the bus carries, as the grpcio plane
does), health checks, retries, deadlines, limits and drain. Options that only tune grpcio's
machinery mean nothing there and are refused with one line when combined with `--data-plane
native`, rather than accepted and ignored. Pure: no imports of
either plane.
"""

from __future__ import annotations

from gproxy_mp.config import WorkerOptions
from gproxy_mp.errors import ConfigError

NATIVE = "native"


def check_data_plane(worker: WorkerOptions) -> None:
    """Raise `ConfigError` naming the first option the chosen plane cannot honour."""
    if worker.data_plane != NATIVE:
        return
    refused = _native_refusals(worker)
    if refused:
        raise ConfigError(f"--data-plane native does not support {refused[0]} yet; "
                          "use --data-plane grpcio")


def _native_refusals(worker: WorkerOptions) -> list[str]:
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
