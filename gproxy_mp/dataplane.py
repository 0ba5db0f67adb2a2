"""Which options each data plane (`--data-plane`) does: the check that refuses the rest.

The native engine (`gproxy_mp._native`) forwards plaintext h2c with either balancer, retries,
deadlines, limits and drain. Options it does not do yet are refused with one line when combined
with `--data-plane native`, rather than accepted and ignored; options that only tune grpcio's
machinery mean nothing there and are refused the same way. Pure: no imports of either plane.
"""

from __future__ import annotations

from collections.abc import Sequence

from gproxy_mp.config import KubernetesTarget, Target, WorkerOptions
from gproxy_mp.errors import ConfigError

NATIVE = "native"


def check_data_plane(worker: WorkerOptions, *, locality: str,
                     targets: Sequence[Target]) -> None:
    """Raise `ConfigError` naming the first option the chosen plane cannot honour."""
    if worker.data_plane != NATIVE:
        return
    refused = _native_refusals(worker, locality=locality, targets=targets)
    if refused:
        what, instead = refused[0]
        raise ConfigError(f"--data-plane native does not support {what} yet; "
                          f"use --data-plane grpcio{instead}")


def _native_refusals(worker: WorkerOptions, *, locality: str,
                     targets: Sequence[Target]) -> list[tuple[str, str]]:
    """(the option, another way out than the grpcio plane: "" or " or ...")."""
    refused: list[str] = []
    tls = (("--tls-cert", worker.tls_cert), ("--tls-key", worker.tls_key),
           ("--tls-client-ca", worker.tls_client_ca), ("--backend-tls", worker.backend_tls),
           ("--backend-ca", worker.backend_ca), ("--backend-cert", worker.backend_cert),
           ("--backend-key", worker.backend_key),
           ("--backend-tls-server-name", worker.backend_tls_server_name))
    refused += [flag for flag, value in tls if value]
    if worker.health_check is not None:
        refused.append("--health-check")
    locality_refused = (locality in ("node", "zone") or (
        locality == "auto" and any(isinstance(t, KubernetesTarget) for t in targets)))
    if worker.unary_methods:
        refused.append("--unary-methods")
    if worker.schema_unary_methods or worker.schema_streaming_methods:
        refused.append("--proto-descriptor-set")
    if worker.event_loop != "auto":
        refused.append(f"--event-loop {worker.event_loop}")
    if worker.grpc_engine != "iomgr":
        refused.append(f"--grpc-engine {worker.grpc_engine}")
    if worker.metrics_method_label:
        refused.append("--metrics-method-label")
    if worker.access_log:
        refused.append("--access-log")
    found = [(flag, "") for flag in refused]
    if locality_refused:  # auto is refused only where it could prefer some backends
        found.append((f"--locality {locality} (with kubernetes: targets)"
                      if locality == "auto" else f"--locality {locality}", " or --locality off"))
    return found
