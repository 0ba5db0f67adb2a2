"""``python -m harness.backend``: run the backend program."""

import sys

from harness.backend.program import main

sys.exit(main())
