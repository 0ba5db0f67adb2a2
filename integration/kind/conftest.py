"""The kind suite runs only where run.sh set it up: GPROXY_KIND=1 and a kind cluster.

`pytest` from the repository root never reaches this directory (pyproject's testpaths is
tests/). A run that names it anyway (`pytest integration/kind`, `pytest .`) without
GPROXY_KIND=1 collects nothing here instead of skipping: under GPROXY_REQUIRE_ALL_TIERS=1 a skip
would count as a failure, and without Docker and kind there is nothing this suite could test.
"""

from __future__ import annotations

import os

KIND_ENABLED = os.environ.get("GPROXY_KIND") == "1"

collect_ignore_glob = [] if KIND_ENABLED else ["test_*.py"]
