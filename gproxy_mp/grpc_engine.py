"""Which I/O engine gRPC's C core runs in the workers: its classic iomgr, or the EventEngine.

grpcio (1.6x onwards) moves connections onto the EventEngine, which reads sockets on its own
thread pool and hands every completed operation across threads to grpc.aio's poller thread.
With iomgr, the poller thread waiting on the completion queue polls the sockets itself, so an
operation completes without that extra hop. Measured on a small unary call through one worker
(`python -m bench cost --variant event-engine='--grpc-engine event-engine'`, grpcio 1.85):
410 -> 354 us of CPU per call and 843 -> 700 us one-at-a-time p50 (other runs: 390 -> 338,
427 -> 334); streaming within noise; the whole test suite passes on both.

gRPC reads the choice from `GRPC_EXPERIMENTS` when it starts, so it is set in the environment
the supervisor gives each worker (`worker_environment`). A `GRPC_EXPERIMENTS` of the user's own
is kept and comes after ours: gRPC applies the list in order, so the user's entries win. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from gproxy_mp.errors import ConfigError

GRPC_ENGINES = ("iomgr", "event-engine")
EXPERIMENTS_VARIABLE = "GRPC_EXPERIMENTS"
IOMGR_EXPERIMENTS = (
    "-event_engine_client",
    "-event_engine_listener",
    "-event_engine_for_all_other_endpoints",
)
"""gRPC experiments switched off to run on iomgr: client connections, listeners, the rest."""


def check_grpc_engine(name: str) -> str:
    if name not in GRPC_ENGINES:
        raise ConfigError(f"{name!r}: expected one of {', '.join(GRPC_ENGINES)}")
    return name


VERBOSITY_VARIABLE = "GRPC_VERBOSITY"
WORKER_VERBOSITY = "ERROR"
"""gRPC core's own log lines in workers: errors only, unless the user's environment says
otherwise. Core logs some events at INFO on its own (every failed TLS handshake, with the
client's reason), which would flood stderr and break `--log-format json` lines."""


def worker_environment(engine: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a worker runs with: `environ`, plus what selects `engine`, and gRPC
    core's verbosity (`WORKER_VERBOSITY` unless set)."""
    env = dict(environ)
    env.setdefault(VERBOSITY_VARIABLE, WORKER_VERBOSITY)
    if engine == "iomgr":
        own = env.get(EXPERIMENTS_VARIABLE, "").strip().strip(",")
        env[EXPERIMENTS_VARIABLE] = ",".join((*IOMGR_EXPERIMENTS, *([own] if own else [])))
    return env
