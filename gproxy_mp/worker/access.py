"""The access log (`--access-log`): one INFO line per finished call, on either data plane.

`METHOD BACKEND CODE DURATIONms`, with the same values as extra fields for `--log-format
json` (`method`, `backend`, `code`, `duration_ms`). The grpcio plane writes a call's line when
its handler ends; the native plane when its adapter drains the engine's queue of records, a
few times a second (`planes/native.py`). No gRPC here.
"""

from __future__ import annotations

import logging

access_log = logging.getLogger("gproxy_mp.access")


def log_call(method: str, backend: str, code: str, seconds: float) -> None:
    """One call's line; ``backend`` "" when no backend was tried."""
    access_log.info("%s %s %s %.1fms", method, backend or "-", code, seconds * 1000,
                    extra={"method": method, "backend": backend, "code": code,
                           "duration_ms": round(seconds * 1000, 3)})
