"""A worker's data plane: what forwards its calls, behind one small interface.

`run_worker` (`worker/main.py`) drives whichever plane `--data-plane` chose through `DataPlane`
and never asks which one runs: replace the endpoint set, start serving on the route's
SO_REUSEPORT address, read counts for status reports, drain, stop. Two implementations:

- `grpcio` (`planes/grpcio.py`): grpc.aio's server and one channel per backend, the reference.
- `native` (`planes/native.py`): the Rust engine of `gproxy_mp._native`, on a thread of its own.

Each is imported only when chosen (`build_plane`), so a native-plane worker never imports grpc,
nor cryptography and protobuf, which only TLS checks and the grpcio plane need (import-linter
contracts keep the native modules free of them; process tests check the running worker's map
and that it idles in at most 60% of a grpcio worker's memory).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

from gproxy_mp.bus.schema import BackendCondition, CallCounts, TlsSide
from gproxy_mp.launch import WorkerConfig
from gproxy_mp.model import EndpointSet

Root = tuple[str, Coroutine[Any, Any, None]]
"""A long-lived task a plane needs (name, coroutine): the worker supervises it as a root."""


class DataPlane(Protocol):
    def roots(self) -> list[Root]:
        """The plane's long-lived tasks; one that ends or raises stops the worker."""

    def update(self, endpoints: EndpointSet) -> None:
        """Replace the endpoint set: new backends connect, removed ones leave the pick at once
        and their connections close when their calls end."""

    def __len__(self) -> int:
        """Endpoints in the current set."""

    async def start(self) -> None:
        """Bind the route's address (SO_REUSEPORT) and serve. Raises `AddressInUseError`."""

    def describe(self) -> str:
        """What serves, for the worker's "serving" log line."""

    @property
    def active_calls(self) -> int: ...

    def counts(self) -> CallCounts:
        """Cumulative call counts since the worker started, for a status report."""

    def unhealthy(self) -> tuple[dict[str, BackendCondition], int]:
        """Backends not counted healthy (at most `MAX_UNHEALTHY`), and how many more."""

    def panic(self) -> bool:
        """No backend passes its health check, so calls go to all of them."""

    def certificates(self) -> dict[TlsSide, float]:
        """Per side with a certificate in use: its chain's notAfter (Unix seconds)."""

    def reread_tls(self) -> None:
        """SIGHUP: look at the TLS files now, as the periodic check would; one log line saying
        what came of it."""

    async def drain(self, timeout: float) -> bool:
        """Stop accepting, GOAWAY, let calls finish for up to `timeout` seconds, cancel the
        rest. True when every call finished in time."""

    async def stop(self) -> None:
        """Stop serving now, cancelling calls in flight."""

    async def close(self) -> None:
        """Release everything (backend connections); the last call, after serving ended."""


def build_plane(config: WorkerConfig) -> DataPlane:
    """The plane `config` asks for. Raises `MaterialError` when TLS files are unusable."""
    if config.options.data_plane == "native":
        from gproxy_mp.worker.planes.native import NativePlane  # noqa: PLC0415

        return NativePlane(config)
    from gproxy_mp.worker.planes.grpcio import GrpcioPlane  # noqa: PLC0415 (grpc: only here)

    return GrpcioPlane(config)
