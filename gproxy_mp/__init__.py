"""gproxy-mp: a node-level gRPC load balancer that balances every call, not every connection."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gproxy-mp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
