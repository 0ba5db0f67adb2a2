"""Start and always stop the interop tier's own processes: ``tests.interop.backend`` servers.

Each runs in its own session with a stdin pipe (it stops when the pipe closes, so a killed test
run leaves nothing behind); teardown is SIGTERM to its group, a bounded wait, then SIGKILL, as
for every ``tests.support.processes.Backend``. The proxy itself is started with
``tests.support.processes.Proxy``.
"""

from __future__ import annotations

from tests.support.processes import Backend


class EchoBackend(Backend):
    """A running ``python -m tests.interop.backend`` (its options go in ``extra_args``)."""

    MODULE = "tests.interop.backend"
    LOG_PREFIX = "interop-backend"
    STOP_ON_STDIN_EOF = ()  # it always stops when stdin closes

    def output(self) -> str:
        return f"--- backend {self.name}\n{super().output()}"
