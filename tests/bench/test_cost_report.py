"""The sizing lines of `python -m bench cost`: cores per 1,000 calls/s and calls/s per core
from a proxy's median CPU per call; a configuration without a proxy gets none. With `--tls`:
the line setting each proxy's CPU per call with TLS beside its own in clear, and the
reference of a `-tls` row's ratios (nginx-tls)."""

from __future__ import annotations

from bench.cost.report import GROUPS, Spread, Summary, sizing, table, tls_lines


def summary(proxy_cpu_us: float) -> Summary:
    return Summary(rate=Spread(1.0, 1.0, 1.0),
                   cpu_us={"proxy": Spread(proxy_cpu_us, proxy_cpu_us, proxy_cpu_us)},
                   load_p50=0.0, load_p99=0.0, single_p50=0.0, single_p99=0.0, rounds=1)


def test_sizing_turns_cpu_per_call_into_cores_and_calls_per_core() -> None:
    text = sizing({"direct": summary(0.0), "gproxy-w1": summary(250.0)},
                  has_proxy={"direct": False, "gproxy-w1": True})
    assert text.splitlines() == [
        "  gproxy-w1    0.250 cores per 1,000 calls/s, 4,000 calls/s per core"]


def test_tls_lines_set_each_proxy_with_tls_beside_itself_in_clear() -> None:
    summaries = {"direct": summary(0.0), "direct-tls": summary(0.0),
                 "gproxy-w1": summary(400.0), "gproxy-w1-tls": summary(500.0),
                 "nginx": summary(40.0), "nginx-tls": summary(60.0),
                 "haproxy": summary(50.0)}
    assert tls_lines(summaries).splitlines() == [
        "  TLS on both hops: gproxy-w1-tls 500 µs/call vs gproxy-w1 400 µs/call (+25%)",
        "  TLS on both hops: nginx-tls 60 µs/call vs nginx 40 µs/call (+50%)"]
    # without its plaintext configuration in the run, a -tls one gets no line
    assert tls_lines({"nginx-tls": summary(60.0)}) == ""


def full(proxy_cpu_us: float) -> Summary:
    """A summary with every CPU group (the table prints them all)."""
    return Summary(rate=Spread(1.0, 1.0, 1.0),
                   cpu_us={g: Spread(proxy_cpu_us, proxy_cpu_us, proxy_cpu_us) for g in GROUPS},
                   load_p50=0.0, load_p99=0.0, single_p50=0.0, single_p99=0.0, rounds=1)


def test_a_tls_row_is_compared_with_nginx_tls_and_a_plaintext_row_with_nginx() -> None:
    summaries = {"gproxy-w1": full(400.0), "gproxy-w1-tls": full(500.0),
                 "nginx": full(40.0), "nginx-tls": full(50.0)}
    rows = {line.split()[0]: line.split()[-1] for line in
            table(summaries, has_proxy=dict.fromkeys(summaries, True)).splitlines()[1:]}
    assert rows == {"gproxy-w1": "10.000", "gproxy-w1-tls": "10.000", "nginx": "1.000",
                    "nginx-tls": "1.000"}
