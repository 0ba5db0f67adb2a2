"""gproxy-mp: a node-level gRPC load balancer that balances every call, not every connection.

`__version__` is looked up when first asked for (the CLI and the supervisor ask), so a worker
process, which never does, does not import `importlib.metadata` (about 2.5 MiB resident).
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 (see above)

    try:
        found = version("gproxy-mp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
