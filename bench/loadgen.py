"""`python -m bench.loadgen`: the benchmark's load generator on its own; it lives in ``harness.load``."""

from __future__ import annotations

import sys

from harness.load.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
