"""Load generators: h2load for unary calls, the grpcio client for server streaming.

Each run is bounded in count (``calls``) and time (a subprocess timeout) and returns a ``Run``:
calls, wall seconds, the load generator's own CPU seconds, and per-call latencies.

h2load (C, a few µs of CPU per call) sends the framed request body as a POST with the gRPC
headers; its ``--log-file`` gives one line per call (start µs, HTTP status, duration µs), from
which the percentiles come (h2load prints none). h2load counts any HTTP 200 as success whatever
the grpc-status, so a run is accepted only if every call succeeded *and* at least
``calls x response size`` body bytes came back: a proxy answering Trailers-Only errors sends no
body and fails this. Its CPU is read with ``getrusage(RUSAGE_CHILDREN)`` around the run (the
harness reaps no other child meanwhile).

Over TLS (``tls``/``ca``, the ``-tls`` configurations): h2load gets an ``https://`` URL and
negotiates h2 with ALPN (it does not verify the certificate; the grpcio check before any load
does); the grpcio client gets ``--ca``.
"""

from __future__ import annotations

import json
import math
import re
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.rig.workloads import Workload
from harness.processes import REPO

CONNECTIONS, STREAMS = 8, 16
"""h2load concurrency under load: 8 connections x 16 calls in flight on each."""
MIN_RATE = 50.0
"""Calls/s below which a run is cut off by its timeout (plus a 60 s margin)."""
STREAM_MIN_RATE = 2.0
"""Streaming calls (1,000 messages) per second below which a run is cut off (plus 60 s)."""


class LoadError(RuntimeError):
    """A run did not complete every call successfully."""


@dataclass(frozen=True)
class Run:
    calls: int
    seconds: float
    loadgen_cpu: float
    latencies_us: list[float]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def h2load(address: str, workload: Workload, *, body: Path, calls: int, log: Path,
           one_at_a_time: bool = False, rate: int | None = None, tls: bool = False,
           connections: int | None = None, threads: int = 1,
           prefix: Sequence[str] = ()) -> Run:
    """``rate``: calls/s in all, spread over the connections (h2load's --rps is per
    connection); None: as fast as the path answers. ``tls``: over TLS (https, ALPN h2).
    ``connections`` (default ``CONNECTIONS``) and ``threads`` (h2load's ``-t``) apply under
    load; ``prefix`` goes before ``h2load`` in the command line (``taskset -c CORES``, which
    execs it: the CPU read is still h2load's)."""
    connections, streams = (1, 1) if one_at_a_time else (connections or CONNECTIONS, STREAMS)
    threads = 1 if one_at_a_time else threads
    paced = [f"--rps={max(1, round(rate / connections))}"] if rate else []
    argv = [*prefix, "h2load", "-n", str(calls), "-c", str(connections), "-m", str(streams),
            "-t", str(threads), *paced,
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body),
            "--log-file", str(log), f"{'https' if tls else 'http'}://{address}{workload.method}"]
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    cpu = _children_cpu()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True,
                             timeout=60 + calls / MIN_RATE).stdout
    except subprocess.CalledProcessError as error:
        raise LoadError(f"h2load exited {error.returncode}: {error.stderr[-500:]}") from error
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"h2load took longer than {error.timeout:.0f} s") from error
    cpu = _children_cpu() - cpu
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    finished = re.search(r"finished in ([\d.]+)(\w+),", out)
    data = re.search(r"\((\d+)\) data", out)
    if not done or not finished or not data or int(done.group(2)) != calls:
        raise LoadError(f"not every call succeeded through {address}:\n{out[-1500:]}")
    expected = calls * len(workload.response_body)
    if int(data.group(1)) < expected:
        raise LoadError(f"{data.group(1)} body bytes came back, {expected} expected "
                        f"(gRPC errors answered with HTTP 200?)")
    seconds = float(finished.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[finished.group(2)]
    latencies = [float(line.split("\t")[2]) for line in log.read_text().splitlines() if line]
    if len(latencies) != calls:
        raise LoadError(f"h2load logged {len(latencies)} calls, not {calls}")
    return Run(calls=calls, seconds=seconds, loadgen_cpu=cpu, latencies_us=latencies)


def run_client(command: str, address: str, *, calls: int, channels: int, per_channel: int,
               min_rate: float, ca: Path | None = None) -> dict[str, Any]:
    """``python -m bench.rig.client COMMAND ADDRESS`` (``stream`` or ``unary``), bounded at
    60 s plus ``calls / min_rate``, over TLS trusting ``ca`` if given; its JSON. LoadError if
    the client itself fails."""
    argv = [sys.executable, "-m", "bench.rig.client", command, address, "--calls", str(calls),
            "--channels", str(channels), "--per-channel", str(per_channel),
            *(["--ca", str(ca)] if ca else [])]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO,
                             timeout=60 + calls / min_rate).stdout
    except subprocess.CalledProcessError as error:
        raise LoadError(f"{command} client exited {error.returncode}: "
                        f"{error.stderr[-500:]}") from error
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"{command} client took longer than {error.timeout:.0f} s") from error
    result: dict[str, Any] = json.loads(out)
    return result


def stream(address: str, *, calls: int, one_at_a_time: bool = False,
           ca: Path | None = None) -> Run:
    """Server-streaming calls with the grpcio client (4 channels x 2 in flight, or 1 x 1);
    over TLS trusting ``ca`` if given."""
    channels, per_channel = (1, 1) if one_at_a_time else (4, 2)
    result = run_client("stream", address, calls=calls, channels=channels,
                        per_channel=per_channel, min_rate=STREAM_MIN_RATE, ca=ca)
    if result["failed"]:
        raise LoadError(f"{result['failed']} of {calls} streaming calls failed via {address}")
    return Run(calls=calls, seconds=result["seconds"], loadgen_cpu=result["cpu_seconds"],
               latencies_us=result["latencies_us"])
