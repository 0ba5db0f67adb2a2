"""`gproxy-mp-demo`: see per-call balancing with nothing but this package installed.

Starts three demo gRPC backends on loopback, runs the real `gproxy-mp` command in front of
them with two workers, sends calls over a few client connections, and prints which backend and
which proxy worker served each call. Then stops the proxy with SIGTERM, as Kubernetes would.

Which worker handled a call is read with psutil (the workers' TCP sockets): each worker holds its
own connection to each backend, so the backend's view of its peer (an ephemeral port) names the
worker process.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager

import grpc
import psutil

METHOD = "/demo.Greeter/Hello"


class _Greeter(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(self, name: str) -> None:
        self.name = name

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        if details.method != METHOD:
            return None

        def hello(request: bytes, context: grpc.ServicerContext) -> bytes:
            reply = {"backend": self.name, "peer": context.peer(), "request": request.decode()}
            return json.dumps(reply).encode()

        return grpc.unary_unary_rpc_method_handler(hello)


@contextmanager
def demo_backends(count: int) -> Iterator[list[str]]:
    """`count` in-process demo backends on 127.0.0.1; yields their addresses."""
    servers, addresses = [], []
    for index in range(count):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((_Greeter(f"backend-{index + 1}"),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    try:
        yield addresses
    finally:
        for server in servers:
            server.stop(grace=1).wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _worker_of_port(port: int, worker_pids: list[int]) -> int | None:
    """The worker process holding a TCP socket whose local port is `port`, if any."""
    for pid in worker_pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(conn.laddr and conn.laddr.port == port for conn in connections):
            return pid
    return None


def _wait_serving(address: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        hello = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        while True:
            try:
                hello(b"ping", timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _worker_pids(admin: str) -> list[int]:
    with urllib.request.urlopen(f"http://{admin}/debug/endpoints", timeout=5) as response:
        state = json.load(response)
    return [w["pid"] for route in state["routes"] for w in route["workers"] if w["pid"]]


def run_demo(*, backends: int, workers: int, connections: int, calls: int) -> int:
    port, admin_port = _free_port(), _free_port()
    listen, admin = f"127.0.0.1:{port}", f"127.0.0.1:{admin_port}"
    with ExitStack() as stack:
        addresses = stack.enter_context(demo_backends(backends))
        log = stack.enter_context(tempfile.TemporaryFile("w+"))
        command = [sys.executable, "-m", "gproxy_mp", "-p",
                   f"{listen}-static:///{','.join(addresses)}", "--workers", str(workers),
                   "-d", "1s", "--admin-address", admin]
        print(f"$ gproxy-mp {' '.join(command[3:])}\n")
        proxy = subprocess.Popen(command, stderr=log, stdout=log)
        try:
            _wait_serving(listen, timeout=30)
            _wait_for_workers(admin, workers)
            pids = _worker_pids(admin)
            table = _send_calls(listen, pids, connections=connections, calls=calls)
            _print_table(table, pids, backends=backends, connections=connections, calls=calls)
        finally:
            proxy.send_signal(signal.SIGTERM)
            code = proxy.wait(timeout=60)
            log.seek(0)
            print("\nproxy log (SIGTERM sent at the end, as Kubernetes would):")
            print("".join(f"  {line}" for line in log))
            print(f"proxy exited with code {code}")
    return 0 if code == 0 else 1


def _wait_for_workers(admin: str, workers: int) -> None:
    deadline = time.monotonic() + 30
    while len(_worker_pids(admin)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)


def _send_calls(listen: str, pids: list[int], *, connections: int,
                calls: int) -> dict[int, collections.Counter[tuple[str, int | None]]]:
    """Per client connection: Counter of (backend, worker pid) over its calls."""
    table: dict[int, collections.Counter[tuple[str, int | None]]] = {}
    for conn in range(connections):
        # A channel of its own per "client": a separate TCP connection to the proxy.
        with grpc.insecure_channel(listen, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            hello = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            counter: collections.Counter[tuple[str, int | None]] = collections.Counter()
            for index in range(calls):
                reply = json.loads(hello(f"call {index}".encode(), timeout=5))
                peer_port = int(reply["peer"].rsplit(":", 1)[1])
                counter[(reply["backend"], _worker_of_port(peer_port, pids))] += 1
            table[conn] = counter
    return table


def _print_table(table: dict[int, collections.Counter[tuple[str, int | None]]], pids: list[int],
                 *, backends: int, connections: int, calls: int) -> None:
    names = [f"backend-{i + 1}" for i in range(backends)]
    print(f"{connections} client connections x {calls} calls through {len(pids)} proxy workers "
          f"(pids {', '.join(map(str, pids))}) to {backends} backends:\n")
    header = "".join(f"{n:>12}" for n in names)
    print(f"{'connection':<12}{'worker':>8}{header}")
    totals: collections.Counter[str] = collections.Counter()
    for conn, counter in table.items():
        workers = sorted({str(pid) for (_, pid) in counter})
        per_backend = collections.Counter({b: 0 for b in names})
        for (backend, _), n in counter.items():
            per_backend[backend] += n
        totals.update(per_backend)
        cells = "".join(f"{per_backend[n]:>12}" for n in names)
        print(f"{'#' + str(conn + 1):<12}{'/'.join(workers):>8}{cells}")
    print(f"{'total':<12}{'':>8}" + "".join(f"{totals[n]:>12}" for n in names))
    print("\nEach client connection lands on one worker (the kernel spreads connections over the"
          "\nworkers with SO_REUSEPORT), and every connection's calls are spread over all"
          "\nbackends: balancing per call, not per connection.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gproxy-mp-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--calls", type=int, default=30, help="calls per connection")
    args = parser.parse_args(argv)
    sys.exit(run_demo(backends=args.backends, workers=args.workers,
                      connections=args.connections, calls=args.calls))


if __name__ == "__main__":
    main()
