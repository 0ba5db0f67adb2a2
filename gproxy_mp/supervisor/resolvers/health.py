"""What a resolver tells the operator about itself: updates, errors, freshness, provenance.

Each resolver gets one `ResolverHealth` and reports into it; `/metrics` and
`/debug/endpoints` read it. The Kubernetes resolver writes from its own thread: every field is
replaced whole (never mutated in place), so a reader on the event loop sees either the old or
the new value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ResolverHealth:
    target: str
    updates: int = 0  # changed sets published
    errors: int = 0  # failed lookups, lists or watches
    last_error: str = ""
    last_success: float | None = None  # time.monotonic() of the last answer from the source
    source: dict[str, Any] = field(default_factory=dict)  # where the current set came from

    def succeeded(self, **source: Any) -> None:
        self.last_success = time.monotonic()
        if source:
            self.source = {**source, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def failed(self, error: str) -> None:
        self.errors += 1
        self.last_error = error

    def age(self) -> float | None:
        """Seconds since the source last answered; None if it never has."""
        return None if self.last_success is None else time.monotonic() - self.last_success

    def describe(self) -> dict[str, Any]:
        age = self.age()
        return {"updates": self.updates, "errors": self.errors, "last_error": self.last_error,
                "seconds_since_success": None if age is None else round(age, 3),
                "source": self.source}
