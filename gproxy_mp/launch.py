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

from gproxy_mp.config import WorkerOptions


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker: str  # "<route>#<index>"
    route: str  # the route's bus id
    route_name: str  # its listen address, for logs
    bind_address: str  # what the gRPC server binds
    target: str  # the target, for error messages
    runtime_dir: str  # the bus directory
    supervisor_pid: int
    options: WorkerOptions  # what every worker runs with (`Settings.worker`)
    server_name: str | None = None  # the backends' TLS name unless --backend-tls-server-name

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        fields = json.loads(text)
        options = fields.pop("options")
        for name in ("unary_methods", "schema_unary_methods", "schema_streaming_methods"):
            options[name] = tuple(options[name])
        return cls(**fields, options=WorkerOptions(**options))


def worker_argv(config: WorkerConfig) -> list[str]:
    return [sys.executable, "-m", "gproxy_mp.worker", "--worker", config.worker,
            "--config", config.to_json()]
