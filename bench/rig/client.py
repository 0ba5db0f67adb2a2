"""A real gRPC client, run as its own process: path checks and the server-streaming load.

    python -m bench.rig.client check ADDRESS [--wait SECONDS] [--ca FILE]
    python -m bench.rig.client probe ADDRESS [--ca FILE]
    python -m bench.rig.client stream ADDRESS --calls N [--channels 4] [--per-channel 2] [--ca FILE]
    python -m bench.rig.client unary ADDRESS --calls N [--channels 4] [--per-channel 8] [--ca FILE]

With ``--ca FILE`` every command speaks TLS to ADDRESS (ALPN h2, as grpcio always does),
verifying its certificate against the CA certificates in FILE (PEM) and its address (an IP
SAN); without it, plaintext.

``check`` calls every workload once through ADDRESS with grpcio and prints one JSON object,
``{workload: "ok" | "<what went wrong>"}``: status OK and exactly the expected messages, in
order. The first call is retried on UNAVAILABLE for up to ``--wait`` seconds (a proxy that is
still starting). h2load counts any HTTP 200 as success, so no configuration is reported unless
this passed.

``probe`` calls each of ``workloads.PROBES`` once (a 5 MiB message, a non-protobuf body) with no
message size limit on the client and prints ``{probe: "ok" | "status CODE: details"}``: what
the path does with them, an observation, not a check.

``stream`` runs N server-streaming calls (1,000 messages each) over ``--channels`` channels
with ``--per-channel`` calls in flight on each, checks every call (status OK, message count),
and prints ``{"calls", "failed", "seconds", "cpu_seconds", "latencies_us"}``; ``cpu_seconds``
is this process's CPU time during the calls only (interpreter start-up excluded).

``unary`` runs N small unary calls the same way, each channel on a TCP connection of its own
(a local subchannel pool), checking every reply, and prints the same keys but latencies. A real
gRPC client, unlike h2load, reconnects after a GOAWAY.

``stream`` and ``unary`` are `harness.aio_traffic.run_aio_load` with their call and check.
It runs apart from the benchmark so that gRPC objects live only in the process that uses them,
and so that its CPU time is its own. Every call has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from pathlib import Path

import grpc
from grpc import aio

from bench.rig.workloads import PROBES, WORKLOADS, Workload
from harness.aio_traffic import WrongReplyError, run_aio_load

CALL_TIMEOUT = 30.0
"""Seconds a single call may take before it counts as failed (a 1,000-message stream
through a slow proxy on a loaded 2-core box takes well under a second)."""
MAX_SECONDS = 3600.0
"""Seconds a stream or unary run may take at most (its parent's timeout is shorter)."""
RETRY_INTERVAL = 0.2
"""Seconds between readiness attempts of the first check."""


def check_workload(channel: grpc.Channel, workload: Workload) -> str:
    if workload.streaming:
        call = channel.unary_stream(workload.method, None, None)
        stream = call(workload.request, timeout=CALL_TIMEOUT)
        messages = tuple(stream)
        code = stream.code()
    else:
        reply, outcome = channel.unary_unary(workload.method, None, None).with_call(
            workload.request, timeout=CALL_TIMEOUT)
        messages, code = (reply,), outcome.code()
    if code != grpc.StatusCode.OK:
        return f"status {code.name}"
    if messages != workload.responses:
        return f"{len(messages)} messages, not the {len(workload.responses)} expected ones"
    return "ok"


def credentials(ca: Path | None) -> grpc.ChannelCredentials | None:
    """TLS credentials trusting the CA certificates in ``ca``; None (plaintext) without."""
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()) if ca else None


def open_channel(address: str, *, ca: Path | None,
                 options: tuple[tuple[str, int], ...] = ()) -> grpc.Channel:
    tls = credentials(ca)
    if tls:
        return grpc.secure_channel(address, tls, options=options)
    return grpc.insecure_channel(address, options=options)


def run_checks(address: str, *, wait: float, ca: Path | None = None) -> dict[str, str]:
    results: dict[str, str] = {}
    deadline = time.monotonic() + wait
    with open_channel(address, ca=ca) as channel:
        for workload in WORKLOADS:
            while True:
                try:
                    results[workload.name] = check_workload(channel, workload)
                    break
                except grpc.RpcError as error:
                    code = error.code()
                    if code == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                        time.sleep(RETRY_INTERVAL)
                        continue
                    results[workload.name] = f"status {code.name}: {error.details()}"
                    break
    return results


UNLIMITED = (("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1))


def run_probes(address: str, *, ca: Path | None = None) -> dict[str, str]:
    results: dict[str, str] = {}
    with open_channel(address, ca=ca, options=UNLIMITED) as channel:
        for probe in PROBES:
            try:
                results[probe.name] = check_workload(channel, probe)
            except grpc.RpcError as error:
                results[probe.name] = f"status {error.code().name}: {error.details()}"
    return results


async def _stream(channel: aio.Channel, *, workload: Workload) -> str:
    """One server-streaming call, read to its end; its messages are counted."""
    call = channel.unary_stream(workload.method, None, None)(workload.request,
                                                             timeout=CALL_TIMEOUT)
    count = 0
    while isinstance(await call.read(), bytes):  # not grpc.aio.EOF
        count += 1
    code = await call.code()
    if code != grpc.StatusCode.OK:
        raise WrongReplyError(f"status {code.name}")
    if count != len(workload.responses):
        raise WrongReplyError(f"{count} messages, not {len(workload.responses)}")
    return "ok"


async def _unary(channel: aio.Channel, *, workload: Workload) -> str:
    reply = await channel.unary_unary(workload.method, None, None)(workload.request,
                                                                   timeout=CALL_TIMEOUT)
    if reply != workload.responses[0]:
        raise WrongReplyError("wrong reply")
    return "ok"


async def stream_calls(address: str, *, calls: int, channels: int,
                       per_channel: int, ca: Path | None = None) -> dict[str, object]:
    workload = next(w for w in WORKLOADS if w.streaming)
    run = await run_aio_load(address, functools.partial(_stream, workload=workload),
                             channels=channels, concurrency=channels * per_channel,
                             max_calls=calls, max_seconds=MAX_SECONDS, wait_ready=True,
                             credentials=credentials(ca))
    return {"calls": calls, "failed": calls - run.calls + run.failed, "seconds": run.seconds,
            "cpu_seconds": run.cpu_seconds, "latencies_us": run.latencies_us()}


async def unary_calls(address: str, *, calls: int, channels: int,
                      per_channel: int, ca: Path | None = None) -> dict[str, object]:
    """``calls`` small unary calls over ``channels`` connections of their own."""
    # A subchannel pool per channel: one TCP connection each, as separate clients would have.
    run = await run_aio_load(address, functools.partial(_unary, workload=WORKLOADS[0]),
                             channels=channels, concurrency=channels * per_channel,
                             max_calls=calls, max_seconds=MAX_SECONDS, wait_ready=True,
                             options=(("grpc.use_local_subchannel_pool", 1),),
                             credentials=credentials(ca))
    return {"calls": calls, "failed": calls - run.calls + run.failed, "errors": run.errors(),
            "seconds": run.seconds, "cpu_seconds": run.cpu_seconds}


def main() -> None:  # a process of its own, started by bench.rig.load and bench.cost
    parser = argparse.ArgumentParser(prog="python -m bench.rig.client")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check")
    check.add_argument("address")
    check.add_argument("--wait", type=float, default=30.0)
    probe = commands.add_parser("probe")
    probe.add_argument("address")
    stream = commands.add_parser("stream")
    stream.add_argument("address")
    stream.add_argument("--calls", type=int, required=True)
    stream.add_argument("--channels", type=int, default=4)
    stream.add_argument("--per-channel", type=int, default=2)
    unary = commands.add_parser("unary")
    unary.add_argument("address")
    unary.add_argument("--calls", type=int, required=True)
    unary.add_argument("--channels", type=int, default=4)
    unary.add_argument("--per-channel", type=int, default=8)
    for command in (check, probe, stream, unary):
        command.add_argument("--ca", type=Path, help="speak TLS, trusting these CA "
                             "certificates (PEM); default: plaintext")
    args = parser.parse_args()
    if args.command == "check":
        print(json.dumps(run_checks(args.address, wait=args.wait, ca=args.ca)))
    elif args.command == "probe":
        print(json.dumps(run_probes(args.address, ca=args.ca)))
    elif args.command == "unary":
        print(json.dumps(asyncio.run(unary_calls(
            args.address, calls=args.calls, channels=args.channels,
            per_channel=args.per_channel, ca=args.ca))))
    else:
        print(json.dumps(asyncio.run(stream_calls(
            args.address, calls=args.calls, channels=args.channels,
            per_channel=args.per_channel, ca=args.ca))))


if __name__ == "__main__":
    main()
