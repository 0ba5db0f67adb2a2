"""Connection attempts to a backend: their time bound, and why the last one failed. Pure.

`--connect-timeout` bounds each attempt (TCP connect, TLS handshake, the server's HTTP/2
SETTINGS) through gRPC's own connect deadline (`connect_options`), so a backend that accepts
and never speaks fails the attempt as UNAVAILABLE instead of holding calls for gRPC's default
20 s or the client's whole deadline; the proxy then retries the call elsewhere
(`worker/proxy.py`). `ConnectAttempts` follows a channel's connectivity states, as the channel
watcher sees them (`worker/channels.py`), and tells a timed-out attempt (`connect_timeout`)
from a refused or reset one (`failing`) by how long it lasted: gRPC does not say why.
"""

from __future__ import annotations

from dataclasses import dataclass

from gproxy_mp.bus.schema import BackendCondition

CONNECT_TIMEOUT_SHARE = 0.9
"""An attempt that failed after this share of the connect timeout or more ran out of time
(gRPC's timer may fire a little early; a refused attempt fails in milliseconds)."""
MAX_INITIAL_BACKOFF_MS = 1000
"""gRPC's own first reconnect backoff, in ms; lowered to the connect timeout when shorter."""


def connect_options(connect_timeout: float) -> tuple[tuple[str, int], ...]:
    """Channel options that bound each connection attempt to `connect_timeout` seconds.

    gRPC's connect deadline (doc/connection-backoff.md) is max(now + MIN_CONNECT_TIMEOUT, the
    next backoff time): `grpc.min_reconnect_backoff_ms` sets MIN_CONNECT_TIMEOUT (default 20 s)
    and the first backoff must not exceed it. After a failed attempt the channel stays in
    TRANSIENT_FAILURE while it reconnects in the background (later attempts may last longer, as
    their backoff grows), so calls fail fast meanwhile instead of waiting for each attempt."""
    millis = max(1, round(connect_timeout * 1000))
    return (("grpc.min_reconnect_backoff_ms", millis),
            ("grpc.initial_reconnect_backoff_ms", min(millis, MAX_INITIAL_BACKOFF_MS)))


@dataclass(slots=True)
class ConnectAttempts:
    """Why a backend's last connection attempt failed, from its channel's state changes."""

    connect_timeout: float
    failure: BackendCondition = BackendCondition.FAILING
    connecting_since: float | None = None

    def observe(self, state: str, now: float) -> bool:
        """The channel is in `state` (a `grpc.ChannelConnectivity` name) at `now`; returns
        True when that ended an attempt in failure (`failure` says why).

        An attempt counts from the first sight of IDLE (the watcher asks an idle channel to
        connect at once) or CONNECTING, whichever comes first: the watcher may see CONNECTING
        late on a busy loop, and a late start would make a timeout look like a refusal."""
        started = self.connecting_since
        if state in ("IDLE", "CONNECTING"):
            self.connecting_since = now if started is None else started
            return False
        self.connecting_since = None
        if state != "TRANSIENT_FAILURE":
            return False
        timed_out = started is not None and (
            now - started >= self.connect_timeout * CONNECT_TIMEOUT_SHARE)
        self.failure = (BackendCondition.CONNECT_TIMEOUT if timed_out
                        else BackendCondition.FAILING)
        return True
