"""Type stub of the native data plane's extension module (built from native/ by maturin).

One class, driven by `gproxy_mp.worker.planes.native`; see native/src/python.rs.
"""

LATENCY_BUCKETS: list[float]

class Engine:
    def __init__(self, *, target: str, max_concurrent_streams: int, connect_timeout: float,
                 max_connection_age: float | None = None,
                 max_connection_age_grace: float | None = None,
                 balancer: str = "round-robin") -> None:
        """`balancer`: "round-robin" or "least-request" (`--balancer`); ValueError else."""
    def start(self, listener_fd: int, wake_fd: int) -> None:
        """Serve on a runtime thread of its own; returns at once. Both descriptors are the
        engine's from now on (pass duplicates): the listener (bound, listening) and a pipe's
        write end, closed when the runtime thread ends."""
    def set_endpoints(self, endpoints: list[tuple[str, str, int]]) -> int:
        """Replace the endpoint set: (`host:port`, locality, ring) each, as the bus places
        them (`model.Endpoint`); returns how many are new. ValueError: an unknown locality."""
    def endpoint_count(self) -> int: ...
    def active_calls(self) -> int: ...
    def stats(self) -> tuple[list[tuple[str, str, str, int]], list[int], float,
                             list[tuple[str, int]]]:
        """(calls as (backend, code, locality, count), latency buckets, duration sum,
        retries)."""
    def set_listener_tls(self, cert: bytes, key: bytes, client_ca: bytes | None = None) -> None:
        """New listener connections use this PEM material from now on (before `start`: the
        listener speaks TLS); `client_ca`: client certificates are required. ValueError (the
        material in use is kept): rustls refused it."""
    def set_backend_tls(self, ca: bytes, cert: bytes | None = None, key: bytes | None = None,
                        server_name: str | None = None) -> None:
        """Backend connections use TLS with this PEM material from now on, verifying
        `server_name` (None: each backend's host); open ones finish their calls and close, new
        calls get new connections. ValueError (the material in use is kept): rustls refused
        it."""
    def tls_failures(self) -> tuple[int, int]:
        """TLS handshakes that failed so far: (listener, backend)."""
    def unhealthy(self) -> list[tuple[str, str]]: ...
    def drain(self, timeout: float) -> None: ...
    def stop(self) -> None: ...
    def outcome(self) -> tuple[bool, str] | None: ...
