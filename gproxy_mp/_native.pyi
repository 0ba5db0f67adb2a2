"""Type stub of the native data plane's extension module (built from native/ by maturin).

One class, driven by `gproxy_mp.worker.planes.native`; see native/src/python.rs.
"""

LATENCY_BUCKETS: list[float]

class Engine:
    def __init__(self, *, target: str, max_concurrent_streams: int, connect_timeout: float,
                 max_connection_age: float | None = None,
                 max_connection_age_grace: float | None = None,
                 balancer: str = "round-robin", method_label: bool = False,
                 access_log: bool = False, health_check: str | None = None,
                 health_check_interval: float = 5.0) -> None:
        """`balancer`: "round-robin" or "least-request" (`--balancer`); ValueError else.
        `method_label`: count calls by method too; `access_log`: queue a record per call for
        `access_records`. `health_check`: the service `--health-check` asks about ("" the
        whole server; None: no checks), every `health_check_interval` seconds."""
    def start(self, listener_fds: list[int], wake_fd: int) -> None:
        """Serve on a runtime thread of its own; returns at once. The descriptors are the
        engine's from now on (pass duplicates): the listeners (bound, listening; one per
        address of the route's listen host) and a pipe's write end, closed when the runtime
        thread ends."""
    def set_endpoints(self, endpoints: list[tuple[str, str, int]]) -> int:
        """Replace the endpoint set: (`host:port`, locality, ring) each, as the bus places
        them (`model.Endpoint`); returns how many are new. ValueError: an unknown locality."""
    def endpoint_count(self) -> int: ...
    def active_calls(self) -> int: ...
    def stats(self) -> tuple[list[tuple[str, str, str, str, int]], list[int], float,
                             list[tuple[str, int]]]:
        """(calls as (backend, code, method, locality, count), latency buckets, duration sum,
        retries)."""
    def access_records(self) -> tuple[list[tuple[str, str, str, float]], int]:
        """The access records queued since the last call, (method, backend, code, seconds)
        each, oldest first, and how many were dropped meanwhile (a bounded queue)."""
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
    def health(self) -> list[str | None]:
        """Each backend's health-check condition (None: passes, or not checked yet), in the
        set's order; empty without health checks."""
    def health_changes(self) -> tuple[list[tuple[str, tuple[str | None, str] | None,
                                                 tuple[str | None, str]]], int]:
        """The verdicts that changed since the last call, oldest first: (backend, (condition,
        why) before or None at its first check, (condition, why) now); and how many changes
        were dropped (too many between two calls)."""
    def wake_on_health_changes(self, wake_fd: int) -> None:
        """With health checks, write a byte to `wake_fd` (a nonblocking pipe's write end, the
        engine's from now on) when a verdict change is queued and none was waiting."""
    def drain(self, timeout: float) -> None: ...
    def stop(self) -> None: ...
    def outcome(self) -> tuple[bool, str] | None: ...
