"""Which options each data plane (`--data-plane`) does: the check that refuses the rest.

The native engine (`gproxy_mp._native`) forwards plaintext h2c with either balancer, locality
rings (it ranks by the placement the bus carries, as the grpcio plane does), health checks,
retries, deadlines, limits and drain. Options it does not do yet are refused with one line when
combined with `--data-plane native`, rather than accepted and ignored; options that only tune
grpcio's machinery mean nothing there and are refused the same way. Pure: no imports of
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
    tls = (("--tls-cert", worker.tls_cert), ("--tls-key", worker.tls_key),
           ("--tls-client-ca", worker.tls_client_ca), ("--backend-tls", worker.backend_tls),
           ("--backend-ca", worker.backend_ca), ("--backend-cert", worker.backend_cert),
           ("--backend-key", worker.backend_key),
           ("--backend-tls-server-name", worker.backend_tls_server_name))
    refused += [flag for flag, value in tls if value]
    if worker.unary_methods:
        refused.append("--unary-methods")
    if worker.schema_unary_methods or worker.schema_streaming_methods:
        refused.append("--proto-descriptor-set")
    if worker.event_loop != "auto":
        refused.append(f"--event-loop {worker.event_loop}")
    if worker.grpc_engine != "iomgr":
        refused.append(f"--grpc-engine {worker.grpc_engine}")
    return refused
