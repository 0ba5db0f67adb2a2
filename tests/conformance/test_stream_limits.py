"""The grpc-go interop client, which honours SETTINGS_MAX_CONCURRENT_STREAMS, never sees a call
refused by ``--max-concurrent-streams``.

``rpc_soak`` with more client threads than the proxy's stream limit, all on one connection:
grpc-go keeps the calls beyond the limit waiting until a stream ends, then starts one at once.
Its calls are short, so the proxy's worker is always releasing streams that have just ended
while new ones arrive: the race that once refused some of them (REFUSED_STREAM; grpc-go retries
such a call once, transparently, and the retry was refused too: 2 to 10 of 400 calls failed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.conftest import ProxiedRoute, serving_route
from tests.conformance.interop import InteropServer, Peers, run_client

pytestmark = pytest.mark.timeout(180)

LIMIT = 2
THREADS = 16
ITERATIONS = 400
SOAK = (f"--soak_num_threads={THREADS}", f"--soak_iterations={ITERATIONS}",
        "--soak_max_failures=0", "--soak_overall_timeout_seconds=60",
        "--soak_request_size=10", "--soak_response_size=10",
        "--soak_per_iteration_max_acceptable_latency_ms=10000")
"""Small calls (10 B each way) on 16 threads sharing one connection, none allowed to fail; the
latency bound is generous: 16 threads share 2 streams on a busy 2-core machine."""


@pytest.fixture(scope="module")
def limited_route(peers: Peers, interop_servers: tuple[InteropServer, ...],
                  log_dir: Path) -> Iterator[ProxiedRoute]:
    with serving_route(peers, interop_servers[:1], log_dir=log_dir, index=4,
                       proxy_extra=("--max-concurrent-streams", str(LIMIT))
                       ) as proxied:
        yield proxied


def test_calls_beyond_the_stream_limit_wait_in_the_grpc_go_client_and_all_succeed(
    peers: Peers, limited_route: ProxiedRoute,
) -> None:
    run = run_client(peers.client, port=limited_route.port, case="rpc_soak", extra=SOAK,
                     timeout=90)
    refused = [line for line in (run.stdout + run.stderr).splitlines() if "failed:" in line]
    assert run.ok, f"{len(refused)} refused, e.g. {refused[:3]}\n{run.describe()[-4000:]}" \
                   f"\n{limited_route.output()}"
