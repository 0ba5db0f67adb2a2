"""Discovery latency: from a DNS answer changing to calls reaching (or leaving) a backend.

    .venv/bin/python -m bench discovery [--changes 20] [--refresh 1s] [--smoke]

Three real grpcio test backends listen on 127.0.0.2, .3 and .4, sharing one port; a real
dnsmasq (`harness/dnsmasq.py`) answers `backends.test` with two or three of them. The
benchmark alternately adds the missing backend and removes the oldest one (rewriting the hosts
file and sending SIGHUP; the change time is taken just before, and a direct query confirms
dnsmasq serves the new answer), while 4 client threads, each on its own connection, send Whoami
calls continuously and record which backend answered each. Per change it reports the seconds
to the first call on an added backend and to the last call on a removed one (which stays up, so
only discovery can move traffic away), and the calls that failed meanwhile.

Configurations, one after another on the same peers:

- gproxy-mp with 2 workers, `-p 127.0.0.1:P-dns://127.0.0.1:D/backends.test:B`, re-resolving
  every `--refresh` (jittered by 10%): `--changes` changes, a random pause of up to one refresh
  interval before each, so changes fall at every phase of the refresh timer.
- the reference that runs here: grpc's own resolver in a Python client,
  `dns://127.0.0.1:D/backends.test:B` with `round_robin`, one add then one remove, each watched
  for `--reference-window`. It re-resolves only when a connection breaks, so expect "not within"
  and "still answering" (grpc/grpc#12295).

Prints a table and writes `result.json` (`bench.results`; git-ignored).
Needs dnsmasq (Debian: dnsmasq-base). Every process it starts runs in its own session and is
stopped by its pid at the end; every wait is bounded.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.discovery import options
from bench.discovery.changes import ChangePlan, run_changes
from bench.discovery.stats import Run, report, table
from bench.environment import environment
from bench.results import RunResults
from harness.dns_route import dns_proxy_args, dns_route, dns_target, hosts_lines
from harness.dnsmasq import DnsServer, find_dnsmasq
from harness.peers import Launcher, Proxy
from harness.processes import free_port
from harness.shared_port import start_on_shared_port
from harness.traffic import ChannelFactory, ThreadLoad
from harness.whoami import private_channels, whoami

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
"""The backends' addresses, also their names (Whoami answers the address)."""
NAME = "backends.test"
CONNECTIONS = 4
"""Client threads, each with its own channel and so its own connection(s)."""
CALL_INTERVAL = 0.002
"""Seconds between the starts of two calls on one connection (at most): about 2,000 calls/s in
all, a call on every backend every few ms, without starving the proxy of the box's CPU."""
MAX_CALLS = 1_000_000
"""Calls in all at most (the time budget ends the load well before: 2,000 calls/s)."""
REFRESH_JITTER = 0.1
"""gproxy-mp jitters `--dns-refresh-rate` by this fraction."""
WINDOW_SLACK = 3.0
"""Seconds added to twice the longest refresh interval when waiting for a change."""
SMOKE = {"changes": 2, "refresh": 0.5, "reference_window": 3.0}


@dataclass(frozen=True)
class Peers:
    dns: DnsServer
    port: int  # every backend's port

    @property
    def target(self) -> str:
        return dns_target(self.dns.port, NAME, self.port)

    def serve(self, hosts: list[str]) -> None:
        """Make dnsmasq answer `hosts`; returns once a direct query shows them."""
        self.dns.set_hosts(hosts_lines(NAME, hosts))


@contextmanager
def run_peers(directory: Path, *, dnsmasq: str) -> Iterator[Peers]:
    dns = DnsServer(executable=dnsmasq, directory=directory)
    launcher = Launcher(directory)
    try:
        dns.start()
        port, _ = start_on_shared_port(launcher, {host: host for host in HOSTS})
        yield Peers(dns, port)
    finally:
        launcher.close()
        dns.close()


def measure(
    label: str,
    open_channel: ChannelFactory,
    peers: Peers,
    *,
    refresh: float | None,
    count: int,
    window: float,
    max_pause: float,
    seed: int,
) -> Run:
    plan = ChangePlan(HOSTS, count=count, window=window, max_pause=max_pause, seed=seed)
    origin = time.monotonic()
    with ThreadLoad(
        open_channel,
        whoami,
        threads=CONNECTIONS,
        interval=CALL_INTERVAL,
        failure_pause=0.0,
        max_calls=MAX_CALLS,
        max_seconds=plan.budget(),
    ) as load:
        changes = run_changes(load, peers.serve, plan)
    return Run(label, peers.target, refresh, origin, changes, load.outcomes())


def measure_proxy(peers: Peers, *, refresh: float, count: int, seed: int, directory: Path) -> Run:
    peers.serve(list(HOSTS[:2]))
    port = free_port()
    listen = f"127.0.0.1:{port}"
    args = dns_proxy_args(dns_route(port, peers.target), refresh_rate=f"{refresh}")
    proxy = Proxy(*args, log_dir=directory)
    try:
        proxy.wait_serving(listen)
        return measure(
            f"gproxy-mp, 2 workers, --dns-refresh-rate {refresh:g}s",
            private_channels(listen),
            peers,
            refresh=refresh,
            count=count,
            window=2 * (1 + REFRESH_JITTER) * refresh + WINDOW_SLACK,
            max_pause=refresh,
            seed=seed,
        )
    finally:
        proxy.stop()


def measure_grpc_resolver(peers: Peers, *, window: float, seed: int) -> Run:
    peers.serve(list(HOSTS[:2]))
    options = (("grpc.lb_policy_name", "round_robin"),)
    return measure(
        "grpc dns resolver (Python client, round_robin)",
        private_channels(peers.target, options=options),
        peers,
        refresh=None,
        count=2,
        window=window,
        max_pause=0.0,
        seed=seed,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench discovery", description=__doc__)
    parser.add_argument("--changes", type=int, default=20, help="DNS changes (default 20)")
    parser.add_argument("--refresh", default="1s", help="--dns-refresh-rate (default 1s)")
    parser.add_argument(
        "--reference-window", default="15s", help="how long to watch grpc's resolver per change"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip grpc's resolver")
    options.add_run_arguments(parser, smoke_help="2 changes, refresh 0.5s, < 60 s")
    args = parser.parse_args(argv)
    options.parse_durations(parser, args, "refresh", "reference_window")
    options.finish_args(args, smoke=SMOKE)
    if args.changes < 1 or args.refresh <= 0:
        parser.error("--changes must be at least 1 and --refresh positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dnsmasq = find_dnsmasq()
    if dnsmasq is None:
        print("error: dnsmasq not installed (Debian: dnsmasq-base)", file=sys.stderr)
        return 2
    results = RunResults("discovery", results_dir=args.results_dir)
    with (
        options.scratch_directory("gproxy-discovery-") as directory,
        run_peers(directory, dnsmasq=dnsmasq) as peers,
    ):
        runs = [
            measure_proxy(
                peers, refresh=args.refresh, count=args.changes, seed=args.seed, directory=directory
            )
        ]
        if not args.no_reference:
            runs.append(measure_grpc_resolver(peers, window=args.reference_window, seed=0))
    print(table(runs))
    result = {
        **options.result_head(
            "discovery", args, run_id=results.run_id, hosts=HOSTS, connections=CONNECTIONS,
            call_interval=CALL_INTERVAL, environment=environment(),
            settings={"refresh_s": args.refresh, "reference_window_s": args.reference_window},
        ),
        "runs": [report(run, confirmed_key="dns_confirmed_after_s") for run in runs],
    }
    results.write_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
