"""A route with thousands of endpoints: the set, its bus message, and what applying it costs.

The endpoints are loopback addresses (127.1.0.1, 127.1.0.2, ... in 127.1.0.0/16, 254 per /24)
on one port where nothing listens, so the worker's eager channels (`worker/channels.py`
connects each new endpoint at once) only ever send a SYN over loopback and get a reset.

Three measurements:

- `measure_codec`: the bus message for the whole set, encoded with `gproxy_mp.bus.schema`
  (the one codec both ends use): its size in bytes and the median encode and decode time.
- `parse_apply_lines`: the worker's own figure, from its debug line "applied endpoints seq=N
  count=M in X ms" (`worker/main.py`): view update, the info log line naming every endpoint,
  and a channel (plus its watcher task) per new endpoint. A `static:///` target publishes one
  set, so the real CLI shows the first apply only.
- `measure_updates`: updates, which a static target never sends, timed in this process with
  the worker's own pieces (schema decode, `RouteView.apply_message`, `BackendPool.update`) on
  one asyncio loop: the first set, the same set with one endpoint replaced, and a set with
  every endpoint replaced (channels closed in the background, as in the worker). It leaves
  out the worker's info log line. A DNS target cannot carry the set instead: 5,000 A records
  take 80 kB, more than the 65,535 bytes of a DNS message.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from gproxy_mp.bus import schema
from gproxy_mp.bus.table import RouteView
from gproxy_mp.model import Endpoint, EndpointSet, build_endpoint_set
from gproxy_mp.worker.channels import BackendPool

PER_BLOCK = 254
"""Hosts used per /24: .1 to .254."""
APPLY_PREFIX = "applied endpoints seq="
CODEC_REPEATS = 5
"""Encodes and decodes timed; the median is reported."""
ROUTE = "0"
EPOCH = "bench"


def fake_hosts(count: int, *, second_octet: int = 1) -> list[str]:
    """`count` loopback addresses in 127.<second_octet>.0.0/16, in order."""
    if count > 256 * PER_BLOCK:
        raise ValueError(f"at most {256 * PER_BLOCK} hosts in one /16")
    return [f"127.{second_octet}.{i // PER_BLOCK}.{i % PER_BLOCK + 1}" for i in range(count)]


def endpoint_set(hosts: list[str], port: int) -> EndpointSet:
    return build_endpoint_set(Endpoint(host, port) for host in hosts)


def static_target(endpoints: EndpointSet) -> str:
    return "static:///" + ",".join(e.address for e in endpoints)


def _median_ms(action: Callable[[], object]) -> float:
    times = []
    for _ in range(CODEC_REPEATS):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def _message(
    endpoints: EndpointSet, *, seq: int, target: str, snapshot: bool = False
) -> schema.EndpointsMessage:
    return schema.EndpointsMessage(
        epoch=EPOCH, seq=seq, route=ROUTE, target=target, endpoints=endpoints, snapshot=snapshot
    )


def measure_codec(endpoints: EndpointSet, *, target: str) -> dict[str, Any]:
    message = _message(endpoints, seq=1, target=target)
    frames = schema.encode(message)
    decoded = schema.decode(frames)
    if not isinstance(decoded, schema.EndpointsMessage) or decoded.endpoints != endpoints:
        raise AssertionError("the bus codec did not round-trip the endpoint set")
    return {
        "message_bytes": sum(len(frame) for frame in frames),
        "target_bytes": len(target.encode()),
        "encode_ms": _median_ms(lambda: schema.encode(message)),
        "decode_ms": _median_ms(lambda: schema.decode(frames)),
    }


def parse_apply_lines(stderr: str) -> list[dict[str, Any]]:
    """The workers' "applied endpoints" debug lines in JSON-format logs."""
    found = []
    for line in stderr.splitlines():
        if APPLY_PREFIX not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        words = str(entry.get("msg", "")).split()  # applied endpoints seq=N count=M in X ms
        if len(words) != 7 or not words[2].startswith("seq="):
            continue
        found.append(
            {
                "worker": str(entry.get("role", "")).removeprefix("worker "),
                "pid": entry.get("pid"),
                "seq": int(words[2].removeprefix("seq=")),
                "count": int(words[3].removeprefix("count=")),
                "apply_ms": float(words[5]),
            }
        )
    return found


async def _apply_updates(sets: list[tuple[str, EndpointSet]]) -> dict[str, float]:
    pool = BackendPool(close_grace=0.0)
    view = RouteView(ROUTE)
    timings: dict[str, float] = {}
    try:
        for seq, (label, endpoints) in enumerate(sets, start=1):
            # The first set reaches a worker as the answer to its snapshot request.
            message = _message(endpoints, seq=seq, target="static:///bench", snapshot=seq == 1)
            frames = schema.encode(message)
            started = time.perf_counter()
            decoded = schema.decode(frames)
            assert isinstance(decoded, schema.EndpointsMessage)
            applied = view.apply_message(decoded)
            assert applied is not None
            pool.update(applied)
            timings[label] = round((time.perf_counter() - started) * 1000, 1)
            await asyncio.sleep(0.5)  # let the watchers start, as they would between updates
    finally:
        await pool.close(0)
    return timings


def measure_updates(count: int, *, port: int) -> dict[str, float]:
    """Milliseconds to decode and apply: the first set, one endpoint replaced, all replaced."""
    first = fake_hosts(count)
    one_replaced = [*first[1:], fake_hosts(1, second_octet=2)[0]]
    all_replaced = fake_hosts(count, second_octet=3)
    return asyncio.run(
        _apply_updates(
            [
                ("first_set", endpoint_set(first, port)),
                ("one_replaced", endpoint_set(one_replaced, port)),
                ("all_replaced", endpoint_set(all_replaced, port)),
            ]
        )
    )
