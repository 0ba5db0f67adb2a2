"""The worker's gRPC server: one catch-all handler, bound with SO_REUSEPORT.

Every worker of a route binds the same address; the kernel spreads new connections over them.
The supervisor has already checked that no other process holds the address, so SO_REUSEPORT
only ever joins siblings.

What one client connection may cost the worker is bounded here: streams at once
(`--max-concurrent-streams`, advertised in the HTTP/2 SETTINGS; a client keeps further calls
waiting on its side until a stream ends, and is never refused one because of the limit) and
the metadata gRPC core parses per call.
"""

from __future__ import annotations

import grpc
import grpc.aio

from gproxy_mp.errors import AddressInUseError

MAX_METADATA_BYTES = 256 * 1024
"""Header and trailer size the proxy accepts on each hop. gRPC's own defaults (8 KiB soft,
16 KiB hard) would make the proxy refuse metadata that client and backend agreed on; a proxy
must be at least as permissive as the peers it sits between. Clients' metadata is checked
against it by the handler (`proxy.py`), the backends' by the backend channels."""
MAX_PARSED_METADATA_BYTES = 4 * MAX_METADATA_BYTES
"""Header size gRPC core itself accepts from a client before the handler sees the call. Above
`MAX_METADATA_BYTES` so that the handler refuses oversized metadata itself and counts the call
as RESOURCE_EXHAUSTED: a call core refuses only reaches the handler as a cancellation, which it
cannot tell from a client's cancel (and a unary handler never runs at all). Beyond this, core
still refuses (RESOURCE_EXHAUSTED to the client), and such a call counts as CANCELLED. Soft and
hard limits are equal: between them core refuses at random."""
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new connection has to complete its handshake (TLS, then the HTTP/2 preface and
SETTINGS) before it is closed: a slowloris bound, the native engine's too (server.rs). gRPC's
default is 120 s."""
MAX_PENDING_CALLS = 20_000
"""New calls gRPC may hold for the handler before it cancels them (default 1,000 soft, 3,000
hard): a burst of calls on one connection must queue, not come back CANCELLED."""

SERVER_OPTIONS = (
    ("grpc.so_reuseport", 1),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_metadata_size", MAX_PARSED_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_PARSED_METADATA_BYTES),
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
    ("grpc.server_handshake_timeout_ms", round(HANDSHAKE_TIMEOUT * 1000)),
)


def connection_age_options(age: float | None,
                           grace: float | None) -> tuple[tuple[str, int], ...]:
    """gRPC's own GOAWAY-after-age settings (it jitters the age by +-10% per connection)."""
    if age is None:
        return ()
    options = [("grpc.max_connection_age_ms", round(age * 1000))]
    if grace is not None:
        options.append(("grpc.max_connection_age_grace_ms", round(grace * 1000)))
    return tuple(options)


DEALLOCATING_STREAMS_HEADROOM = 1.0
"""Streams a connection may still hold in the worker after they ended on the wire, as a share
of `--max-concurrent-streams` (gRPC's `grpc.http2.max_deallocating_streams`, 0 by default).

gRPC core's overload protection (`grpc.http.overload_protection`, on) counts a stream until the
application has released its call, not until it ended on the wire: that is what bounds a
rapid-reset flood (CVE-2023-44487), whose streams end on the wire at once. But the client counts
a stream only until it has received the trailers, and the worker's Python releases the call a
little later (after the completion reaches its event loop). A client that honours the limit and
keeps calls waiting starts the next one the moment a stream ends, so without headroom core
refused it (REFUSED_STREAM, UNAVAILABLE in grpcio and grpc-go clients): 5 of 20 one-second calls
at limit 10, up to 36 of 150 at limit 100, and the same from a plain grpc.aio server without the
proxy. With headroom, core refuses a new stream only once the connection holds more than
limit x (1 + headroom) calls: a client that honours the limit has at most the limit open, so it
is refused only if the worker lags a whole limit's worth of ended calls behind (none seen, down
to limit 2 with 16 client threads of short calls). A flood of reset streams still makes the
worker hold at most twice the limit per connection (tests/process/test_stream_limits.py).
grpcio 1.85 honours the argument; one that did not would ignore it, and those tests fail."""


def stream_options(max_concurrent_streams: int | None) -> tuple[tuple[str, int], ...]:
    """HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS for every client connection (grpc's default:
    none advertised, so one connection could open streams without bound, each holding a call
    and its backend call in the worker), and the headroom for streams that ended but are not
    yet released (`DEALLOCATING_STREAMS_HEADROOM`). Overload protection stays on."""
    if max_concurrent_streams is None:
        return ()
    headroom = round(max_concurrent_streams * DEALLOCATING_STREAMS_HEADROOM)
    return (("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.http2.max_deallocating_streams", headroom))


def build_server(
    handler: grpc.GenericRpcHandler[bytes, bytes], *, bind_address: str,
    max_connection_age: float | None = None, max_connection_age_grace: float | None = None,
    max_concurrent_streams: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> grpc.aio.Server:
    """A server with `handler` as its only handler, bound to `bind_address` (not started);
    TLS with `credentials`, else plaintext."""
    options = (SERVER_OPTIONS
               + connection_age_options(max_connection_age, max_connection_age_grace)
               + stream_options(max_concurrent_streams))
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((handler,))
    try:
        port = (server.add_insecure_port(bind_address) if credentials is None
                else server.add_secure_port(bind_address, credentials))
    except RuntimeError as e:
        raise AddressInUseError(f"cannot listen on {bind_address}: {e}") from None
    if port == 0:
        raise AddressInUseError(f"cannot listen on {bind_address}")
    return server
