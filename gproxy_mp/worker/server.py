"""The worker's gRPC server: one catch-all handler, bound with SO_REUSEPORT.

Every worker of a route binds the same address; the kernel spreads new connections over them.
The supervisor has already checked that no other process holds the address, so SO_REUSEPORT
only ever joins siblings.
"""

from __future__ import annotations

import grpc
import grpc.aio

from gproxy_mp.errors import AddressInUseError

MAX_METADATA_BYTES = 256 * 1024
"""Header and trailer size the proxy accepts on each hop. gRPC's own defaults (8 KiB soft,
16 KiB hard) would make the proxy refuse metadata that client and backend agreed on; a proxy
must be at least as permissive as the peers it sits between."""
MAX_PENDING_CALLS = 20_000
"""New calls gRPC may hold for the handler before it cancels them (default 1,000 soft, 3,000
hard): a burst of calls on one connection must queue, not come back CANCELLED."""

SERVER_OPTIONS = (
    ("grpc.so_reuseport", 1),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
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


def build_server(
    handler: grpc.GenericRpcHandler[bytes, bytes], *, bind_address: str,
    max_connection_age: float | None = None, max_connection_age_grace: float | None = None,
) -> grpc.aio.Server:
    """A server with `handler` as its only handler, bound to `bind_address` (not started)."""
    options = SERVER_OPTIONS + connection_age_options(max_connection_age,
                                                      max_connection_age_grace)
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((handler,))
    try:
        port = server.add_insecure_port(bind_address)
    except RuntimeError as e:
        raise AddressInUseError(f"cannot listen on {bind_address}: {e}") from None
    if port == 0:
        raise AddressInUseError(f"cannot listen on {bind_address}")
    return server
