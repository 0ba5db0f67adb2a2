"""Logging set-up, once per process entry (supervisor or worker).

Text lines are for humans: `2026-11-28T05:46:44.123Z INFO  supervisor[812] route=:5000 msg`.
JSON lines are for pipelines: one object per line with time, level, role, route, pid, msg and
any `extra=` fields. Both go to stderr; workers inherit the supervisor's stderr, so one stream
tells the whole story in order.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _timestamp(record: logging.LogRecord) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{whole}.{int(record.msecs):03d}Z"


class _ContextFilter(logging.Filter):
    def __init__(self, *, role: str, route: str) -> None:
        super().__init__()
        self.role, self.route = role, route

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        if not hasattr(record, "route"):
            record.route = self.route
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        route = getattr(record, "route", "")
        where = f" route={route}" if route else ""
        line = (f"{_timestamp(record)} {record.levelname:<7} {getattr(record, 'role', '?')}"
                f"[{record.process}]{where}: {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record), "level": record.levelname.lower(),
            "role": getattr(record, "role", ""), "route": getattr(record, "route", ""),
            "pid": record.process, "logger": record.name, "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(
    *, role: str, route: str = "", fmt: str = "text", level: str = "info"
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter(role=role, route=route))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC core's own logging: errors only
