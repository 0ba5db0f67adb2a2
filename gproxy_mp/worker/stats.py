"""Per-call counters of one worker, reported to the supervisor over the bus every second.

The worker only counts (a dict increment and a bucket increment per call, well under 1% of a
call's cost); `snapshot()` is the bus's `CallCounts` (`bus/schema.py` owns the wire format);
the supervisor aggregates every worker's latest report and renders Prometheus text
(`supervisor/metrics.py`). Label cardinality is bounded here: the backend label is
`host:port`, and after `MAX_BACKENDS` distinct backends further ones are counted as "other".
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from gproxy_mp.bus.schema import LATENCY_BUCKETS, CallCounts, TlsRefusal, TlsSide

MAX_BACKENDS = 1000
"""Distinct backend label values kept per worker; endpoints churn, the label set must not grow
without bound."""
MAX_METHODS = 200
"""Distinct method label values kept per worker when the method label is on (clients choose
method names; the label set must stay bounded)."""
OTHER_BACKEND = "other"
OTHER_METHOD = "other"


@dataclass(slots=True)
class CallStats:
    method_label: bool = False  # count per method too (opt-in: --metrics-method-label)
    calls: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    """(backend, code, method or "", locality) → count"""
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    duration_sum: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)  # reason → count
    tls_failures: int = 0  # backend attempts failed by the connection's TLS handshake
    tls_refused: dict[tuple[TlsSide, TlsRefusal], int] = field(default_factory=dict)
    """(side, reason) → new TLS file versions refused (`worker/credentials.py`)"""
    certificates: dict[TlsSide, float] = field(default_factory=dict)
    """side → notAfter (Unix seconds) of the certificate chain in use: not a count, reported
    as it is"""
    _backends: set[str] = field(default_factory=set)
    _methods: set[str] = field(default_factory=set)

    def record_call(self, backend: str, code: str, seconds: float, method: str = "",
                    locality: str = "none") -> None:
        if backend not in self._backends:
            if len(self._backends) >= MAX_BACKENDS:
                backend = OTHER_BACKEND
            else:
                self._backends.add(backend)
        if not self.method_label:
            method = ""
        elif method not in self._methods:
            if len(self._methods) >= MAX_METHODS:
                method = OTHER_METHOD
            else:
                self._methods.add(method)
        key = (backend, code, method, locality)
        self.calls[key] = self.calls.get(key, 0) + 1
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    def record_tls_failure(self) -> None:
        self.tls_failures += 1

    def record_tls_refused(self, side: TlsSide, reason: TlsRefusal) -> None:
        self.tls_refused[side, reason] = self.tls_refused.get((side, reason), 0) + 1

    def record_certificate(self, side: TlsSide, not_after: float) -> None:
        self.certificates[side] = not_after

    def record_retry(self, reason: str) -> None:
        self.retries[reason] = self.retries.get(reason, 0) + 1

    def snapshot(self) -> CallCounts:
        """A copy of the counts, cumulative since the worker started, for a status report."""
        return CallCounts(calls=dict(self.calls), buckets=list(self.buckets),
                          duration_sum=self.duration_sum, retries=dict(self.retries),
                          tls_failures=self.tls_failures, tls_refused=dict(self.tls_refused))
