"""The grpcio data plane: grpc.aio's server, one catch-all handler, one channel per backend.

The reference implementation, as first built: `server.py` (the server and its options),
`proxy.py` (the handler), `channels.py` (the backend channels), `reflection.py` (unary methods
learned from the backends) and `credentials.py` (TLS) do the work; this adapter only assembles
them behind `DataPlane`. Concurrency: everything on the worker's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import grpc.aio

from gproxy_mp import loops
from gproxy_mp.bus.schema import BackendCondition, CallCounts, TlsSide
from gproxy_mp.launch import WorkerConfig
from gproxy_mp.model import EndpointSet
from gproxy_mp.tls import backend_tls, listener_tls, named_files
from gproxy_mp.worker.channels import BackendPool, ChannelSettings
from gproxy_mp.worker.credentials import BackendCredentials, ReloadingServerCredentials
from gproxy_mp.worker.handshakes import HandshakeFailures
from gproxy_mp.worker.health import HealthChecks
from gproxy_mp.worker.planes import Root
from gproxy_mp.worker.proxy import ProxyHandler
from gproxy_mp.worker.reflection import MethodShapes, UnaryLearner
from gproxy_mp.worker.server import build_server
from gproxy_mp.worker.stats import CallStats

log = logging.getLogger(__name__)


class GrpcioPlane:
    def __init__(self, config: WorkerConfig) -> None:
        self._config = config
        options = config.options
        self._stats = stats = CallStats(method_label=options.metrics_method_label)
        # MaterialError (both sides): the files changed since the supervisor checked them.
        files = backend_tls(options)
        self._credentials = None if files is None else BackendCredentials(files, stats=stats)
        self._handshakes = (None if self._credentials is None
                            else HandshakeFailures(stats.record_tls_failure))
        files = listener_tls(options)
        self._listener_credentials = (None if files is None
                                      else ReloadingServerCredentials(files, stats=stats))
        checks = (None if options.health_check is None
                  else HealthChecks(options.health_check, options.health_check_interval))
        self._pool = BackendPool(
            close_grace=options.drain_timeout, balancer=options.balancer,
            settings=ChannelSettings(
                credentials=None if self._credentials is None
                else self._credentials.credentials(),
                server_name=options.backend_tls_server_name or config.server_name,
                health_checks=checks, connect_timeout=options.connect_timeout))
        self._handler = ProxyHandler(
            self._pool, target=config.target, access_log=options.access_log,
            unary_methods=options.unary_methods, stats=stats, handshakes=self._handshakes)
        schema = MethodShapes(set(options.schema_unary_methods),
                              set(options.schema_streaming_methods))
        self._handler.learned_unary(schema.unary_methods())
        self._learner = (UnaryLearner(self._handler.learned_unary, schema)
                         if options.learn_unary_methods else None)
        self._server: grpc.aio.Server | None = None

    def roots(self) -> list[Root]:
        roots: list[Root] = []
        if self._learner is not None:
            roots.append(("unary-method learner", self._learner.run()))
        if self._credentials is not None:
            roots.append(("backend TLS watcher", self._credentials.watch(self._pool.renew)))
        return roots

    def update(self, endpoints: EndpointSet) -> None:
        added = self._pool.update(endpoints)
        if self._learner is not None:
            self._learner.backends_added(added)

    def __len__(self) -> int:
        return len(self._pool)

    async def start(self) -> None:
        options = self._config.options
        self._server = build_server(
            self._handler, bind_address=self._config.bind_address,
            max_connection_age=options.max_connection_age,
            max_connection_age_grace=options.max_connection_age_grace,
            max_concurrent_streams=options.max_concurrent_streams,
            credentials=None if self._listener_credentials is None
            else self._listener_credentials.credentials())
        await self._server.start()

    def describe(self) -> str:
        options = self._config.options
        return f"{loops.resolve(options.event_loop)} loop, gRPC on {options.grpc_engine}"

    @property
    def active_calls(self) -> int:
        return self._handler.active_calls

    def counts(self) -> CallCounts:
        return self._handler.stats.snapshot()

    def unhealthy(self) -> tuple[dict[str, BackendCondition], int]:
        return self._pool.unhealthy()

    def panic(self) -> bool:
        return self._pool.panic()

    def certificates(self) -> dict[TlsSide, float]:
        return dict(self._stats.certificates)

    def reread_tls(self) -> None:
        if not named_files(self._config.options):
            log.info("SIGHUP: no TLS files to re-read")
            return
        listener, backend = self._listener_credentials, self._credentials
        done = [] if listener is None else [listener.reload_now()]
        if backend is not None:
            done.append(backend.reload_now(self._pool.renew))
        log.info("SIGHUP: re-read the TLS files: %s", ", ".join(done))

    async def drain(self, timeout: float) -> bool:
        if self._server is None:
            return True
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._server.stop(timeout)
        return loop.time() - started < timeout

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    async def close(self) -> None:
        if self._server is not None:  # a server whose start failed half-way is stopped too
            await self._server.stop(None)
        await self._pool.close(0)
        if self._handshakes is not None:
            await self._handshakes.close()
