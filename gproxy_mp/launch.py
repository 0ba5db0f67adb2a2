"""The contract between the supervisor and the worker processes it starts.

The supervisor builds a `WorkerConfig` and turns it into a command line (`worker_argv`); the
worker process parses it back (`WorkerConfig.from_json`). Workers are started fresh with
`subprocess` (never `fork`: gRPC and ZeroMQ are not fork-safe), so this command line is all
they share. Pure: no process handling here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker: str  # "<route>#<index>"
    route: str  # the route's bus id
    route_name: str  # its listen address, for logs
    bind_address: str  # what the gRPC server binds
    target: str  # the target, for error messages
    runtime_dir: str  # the bus directory
    supervisor_pid: int
    shutdown_delay: float
    drain_timeout: float
    log_format: str = "text"
    log_level: str = "info"
    access_log: bool = False
    metrics_method_label: bool = False
    unary_methods: tuple[str, ...] = ()
    learn_unary_methods: bool = True
    event_loop: str = "auto"
    grpc_engine: str = "iomgr"
    max_connection_age: float | None = None
    max_connection_age_grace: float | None = None
    max_concurrent_streams: int = 1000

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        fields = json.loads(text)
        fields["unary_methods"] = tuple(fields.get("unary_methods", ()))
        return cls(**fields)


def worker_argv(config: WorkerConfig) -> list[str]:
    return [sys.executable, "-m", "gproxy_mp.worker", "--worker", config.worker,
            "--config", config.to_json()]
