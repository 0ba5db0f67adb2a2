"""Small-unary throughput through one gproxy-mp worker, side by side with direct calls.

    .venv/bin/python bench/unary_ratio.py [--rounds 3] [--calls 20000] [--workers 1]

Backend: nginx as a fixed-response HTTP/2 cleartext gRPC server (about 23 µs per call, so the
proxy is what gets measured; see docs/benchmarking.md). Load: h2load, 8 connections x 16
streams, a ~100 B gRPC request. The configurations are interleaved (direct, proxy, direct,
proxy, ...) in one run; the figure to trust is the proxy's CPU time per call, read from
/proc/PID/stat of the supervisor and its workers. Before measuring, each path is checked once
with a real gRPC client (grpc-status 0 and the expected payload); h2load alone would count
any HTTP 200. Needs `nginx` and `h2load` (Debian: nginx-light, nghttp2-client).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

METHOD = "/bench.Svc/Unary"
PAYLOAD = b"x" * 100
CLK_TCK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """
worker_processes 1; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_buffer_size 1m; keepalive_requests 100000000;
  http2_max_concurrent_streams 1024; client_body_temp_path {dir}/body;
  server {{ listen 127.0.0.1:{port} http2; root {dir}/www; types {{ }}
    default_type application/grpc;
    location / {{ mirror /mirror_sink; mirror_request_body on; error_page 405 =200 /files$uri; }}
    location /files/ {{ internal; alias {dir}/www/; add_trailer grpc-status 0 always; }}
    location = /mirror_sink {{ internal; return 204; }} }} }}
"""


def frame(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def check_path(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        reply, outcome = call.with_call(PAYLOAD, timeout=5)
        if outcome.code() != grpc.StatusCode.OK or reply != PAYLOAD:
            sys.exit(f"{address}: expected grpc-status 0 and the payload back")


def h2load(address: str, body: Path, calls: int) -> float:
    out = subprocess.run(
        ["h2load", "-n", str(calls), "-c", "8", "-m", "16", "-t", "1",
         "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body),
         f"http://{address}{METHOD}"], capture_output=True, text=True, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not done or not rate or done.group(2) != str(calls):
        sys.exit(f"h2load did not complete every call against {address}:\n{out}")
    return float(rate.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    for tool in ("nginx", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian: apt-get install nginx-light nghttp2-client)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user when started by root
        (work / "www" / METHOD.strip("/").split("/")[0]).mkdir(parents=True)
        (work / "www" / METHOD.strip("/")).write_bytes(frame(PAYLOAD))
        (work / "body").mkdir()
        body = work / "request.bin"
        body.write_bytes(frame(PAYLOAD))
        backend_port, proxy_port = free_port(), free_port()
        (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, port=backend_port))
        nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                                 start_new_session=True)
        proxy = subprocess.Popen(
            [sys.executable, "-m", "gproxy_mp", "-p",
             f"127.0.0.1:{proxy_port}-static:///127.0.0.1:{backend_port}",
             "--workers", str(args.workers), "-d", "0s", "--admin-address", "off",
             "--log-level", "warning"], start_new_session=True)
        try:
            direct, through = f"127.0.0.1:{backend_port}", f"127.0.0.1:{proxy_port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    check_path(direct)
                    check_path(through)
                    break
                except (grpc.RpcError, SystemExit):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            h2load(through, body, 2000)  # warm-up
            results: dict[str, list[float]] = {"direct": [], "proxy": []}
            cpu: list[float] = []
            for _ in range(args.rounds):
                results["direct"].append(h2load(direct, body, args.calls))
                pids = [proxy.pid, *children(proxy.pid)]
                before = cpu_seconds(pids)
                results["proxy"].append(h2load(through, body, args.calls))
                cpu.append((cpu_seconds(pids) - before) / args.calls * 1e6)
        finally:
            for process in (proxy, nginx):
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    d, p = statistics.median(results["direct"]), statistics.median(results["proxy"])
    print(f"small unary (~100 B), h2load 8 connections x 16 streams, {args.calls} calls, "
          f"{args.rounds} interleaved rounds, gproxy-mp --workers {args.workers}")
    print(f"  direct to nginx backend : {d:9.0f} calls/s  (runs {_span(results['direct'])})")
    print(f"  through gproxy-mp       : {p:9.0f} calls/s  (runs {_span(results['proxy'])})")
    print(f"  throughput ratio        : {p / d:9.3f}")
    print(f"  proxy CPU per call      : {statistics.median(cpu):9.0f} µs  (runs {_span(cpu)})")


def _span(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
