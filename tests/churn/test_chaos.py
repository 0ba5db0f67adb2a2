"""Chaos: a minute of calls while faults are injected at random, one after another.

The faults are those that once failed silently or loudly (issue 12): a worker whose loop stops
for good (the watchdog must replace it), a worker paused for a moment, a worker SIGKILLed, the
DNS server stopped for a while (the route must keep its set), and endpoint churn (a backend
leaves the answer, another joins). After each fault, within `RECOVERY` seconds, every backend of
the current answer must be answering calls sent after the fault again and none outside it; and
over the whole run, calls may fail only on the connections a stopped or killed worker held.

The run is reproducible: the seed is printed, and `GPROXY_CHAOS_SEED` replays one. It runs
on each data plane.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness import procfacts
from harness.dnsmasq import DnsServer
from harness.fixtures import both_planes
from harness.peers import Proxy, proxy_args
from harness.processes import free_port
from harness.procfacts import accepted_connections
from harness.shared_port import SharedPortBackends
from harness.traffic import ThreadLoad, timeline
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.churn.peers import metric_sum, scrape
from tests.churn.routes import hosts_lines

pytestmark = [pytest.mark.timeout(240), both_planes]

HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4", "d": "127.0.0.5"}
FIRST_ANSWER = ("a", "b", "c")
WORKERS = 2
CONNECTIONS = 6
RUN_SECONDS = 60.0
"""Seconds after which no new fault starts; the load is bounded a minute beyond."""
MAX_CALLS = 1_000_000
"""Bound on the load's calls (a run makes about 60,000 a minute here)."""
ROUNDS = 2
"""Each fault is injected this many times, in a random order."""
GAP = (1.0, 4.0)
"""Seconds of undisturbed load between a recovery and the next fault, drawn at random."""
WORKER_TIMEOUT = 3.0
RECOVERY = 5.0
"""Seconds after a fault ends (for a hung worker: after the watchdog's deadline) within which
the proxy must serve the current endpoint set again."""
PAUSE = 1.0
"""Seconds a paused worker or the stopped DNS server stays stopped."""
DNS_OUTAGE = 3.0
WINDOW = 1.5
"""Seconds of calls that show where the proxy sends calls now (hundreds of calls)."""
ALLOWED_CODES = {"UNAVAILABLE", "CANCELLED"}
FAULTS = ("hang worker", "pause worker", "kill worker", "dns outage", "churn")


@dataclass
class Chaos:
    load: ThreadLoad
    dns: DnsServer
    proxy: Proxy
    port: int
    answer: list[str]
    log: list[str]
    affected_connections: int = 0

    def workers(self) -> set[int]:
        return set(wait_until(self._listening, timeout=RECOVERY + WORKER_TIMEOUT)
                   or set())

    def _listening(self) -> set[int] | None:
        found = procfacts.listeners(self.port)
        return found if len(found) == WORKERS else None

    def victim(self) -> tuple[int, int]:
        """The worker holding the most client connections, and how many it holds."""
        held = accepted_connections(self.port, self.workers())
        pid = max(held, key=lambda p: held[p])
        return pid, held[pid]

    def serves_current_set(self, since: float) -> bool:
        """Over the last `WINDOW` seconds after `since`: every backend of the answer answered a
        call, no other did, and every connection was answered."""
        since = max(since, time.monotonic() - WINDOW)
        late = [o for o in self.load.outcomes(since) if o.started > since]
        answered = {o.backend for o in late if o.backend is not None}
        connections = {o.connection for o in late if o.backend is not None}
        return answered == set(self.answer) and len(connections) == CONNECTIONS

    def inject(self, fault: str, rng: random.Random) -> float:
        """Inject `fault`; return when it is over (from then on, recovery is timed)."""
        if fault in ("hang worker", "pause worker", "kill worker"):
            pid, held = self.victim()
            self.affected_connections += held
            self.log.append(f"{fault} {pid} holding {held} connections")
            if fault == "kill worker":
                os.kill(pid, signal.SIGKILL)
                return time.monotonic()
            identity = procfacts.identify(pid)
            os.kill(pid, signal.SIGSTOP)
            if fault == "pause worker":
                time.sleep(PAUSE)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                return time.monotonic()
            stopped = time.monotonic()
            gone = wait_until(lambda: identity is None or not procfacts.is_running(identity),
                              timeout=WORKER_TIMEOUT + RECOVERY)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            assert gone, f"hung worker {pid} not replaced; {self.report()}"
            return max(time.monotonic(), stopped + WORKER_TIMEOUT)
        if fault == "dns outage":
            self.log.append("dns outage")
            self.dns.process.send_signal(signal.SIGSTOP)
            try:
                time.sleep(DNS_OUTAGE)
            finally:
                self.dns.process.send_signal(signal.SIGCONT)
            return time.monotonic()
        # churn: one backend leaves the answer, the spare one joins
        spare = sorted(set(HOSTS) - set(self.answer))
        leaving = rng.choice(self.answer)
        self.answer = sorted([*(n for n in self.answer if n != leaving), *spare])
        self.log.append(f"churn -{leaving} +{','.join(spare)}")
        self.dns.set_hosts(hosts_lines({n: HOSTS[n] for n in self.answer}))
        return time.monotonic()

    def report(self) -> str:
        return (f"faults {self.log}\n{self.load.summary()}\n"
                f"{self.proxy.output()}\n{self.dns.output()}")


def test_faults_at_random_under_load_fail_only_calls_on_stopped_or_killed_workers(
    dns_server: DnsServer,
    shared_port_backends: SharedPortBackends,
    proxies: Callable[..., Proxy],
) -> None:
    seed = int(os.environ.get("GPROXY_CHAOS_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} (replay with GPROXY_CHAOS_SEED={seed})")
    backend_port, _ = shared_port_backends(HOSTS)
    dns_server.set_hosts(hosts_lines({n: HOSTS[n] for n in FIRST_ANSWER}))
    listen, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{listen}"
    route = f"127.0.0.1:{listen}-dns://127.0.0.1:{dns_server.port}/backends.test:{backend_port}"
    proxy = proxies(*proxy_args(route, workers=WORKERS, admin_address=admin),
                    "--dns-refresh-rate", "0.5s", "--worker-timeout", f"{WORKER_TIMEOUT}s")
    proxy.wait_serving(address)

    with ThreadLoad(private_channels(address), whoami, threads=CONNECTIONS, max_calls=MAX_CALLS,
                    max_seconds=RUN_SECONDS + 60) as load:
        chaos = Chaos(load, dns_server, proxy, listen, sorted(FIRST_ANSWER), [])
        started = time.monotonic()
        assert wait_until(lambda: chaos.serves_current_set(started), timeout=15), chaos.report()
        recoveries: list[tuple[str, float]] = []
        plan = list(FAULTS) * ROUNDS
        rng.shuffle(plan)
        for fault in plan:
            if time.monotonic() - started > RUN_SECONDS:
                break
            time.sleep(rng.uniform(*GAP))
            over = chaos.inject(fault, rng)
            recovered = wait_until(lambda over=over: chaos.serves_current_set(over),
                                   timeout=RECOVERY)
            recoveries.append((fault, round(time.monotonic() - over, 2)))
            assert recovered, f"not serving {chaos.answer} {RECOVERY}s after {fault}; " \
                              f"{chaos.report()}"
        load.stop()

    failures = load.failures()
    report = (f"seed {seed}; recoveries {recoveries}\n"
              f"{timeline(failures[:20], started)}\n{chaos.report()}")
    print(f"chaos: {len(recoveries)} faults {recoveries}; {len(failures)} of "
          f"{len(load.outcomes())} calls failed on {len({o.connection for o in failures})} "
          f"connections; stopped or killed workers held {chaos.affected_connections}")
    assert {o.code for o in failures} <= ALLOWED_CODES, report
    assert len({o.connection for o in failures}) <= chaos.affected_connections, report
    hangs = sum(1 for fault, _ in recoveries if fault == "hang worker")
    assert metric_sum(scrape(admin), "gproxy_worker_restarts_total", reason="timeout") == hangs, \
        report
