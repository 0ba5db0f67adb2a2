"""The Whoami call the traffic generators make, and channels with connections of their own.

`whoami` is ``harness.client.whoami`` bound to `harness.traffic.CALL_TIMEOUT`, the bound
`harness.traffic.ThreadLoad` joins on; `private_channels` opens channels that share no
subchannel (TCP connection) with any other, as separate clients would. For a ``dns:///``
target each channel has subchannels of its own to every address.

Nothing here holds state; gRPC objects are made only by the caller's threads.
"""

from __future__ import annotations

import grpc

from harness import client
from harness.traffic import CALL_TIMEOUT, ChannelFactory


def whoami(channel: grpc.Channel) -> str:
    """The name of the backend that answered one Whoami call on `channel`."""
    return client.whoami(channel, timeout=CALL_TIMEOUT)


def private_channels(
    address: str, *, options: tuple[tuple[str, object], ...] = ()
) -> ChannelFactory:
    """A factory of channels to `address` (with `options`), each on a connection of its own."""

    def build() -> grpc.Channel:
        return grpc.insecure_channel(address, options=[client.PRIVATE_CONNECTION, *options])

    return build
