"""The open loop's arrival schedule: request i is due at ``t0 + i / rate``, whatever happened to earlier ones."""

from __future__ import annotations

import math
from array import array


def arrival_count(rate: float | None, duration: float, count: int | None) -> int:
    """Arrivals in [0, duration) seconds at rate per second, capped by count; a burst (rate None) is exactly count.

    Raises ValueError for a burst without a count.
    """
    if rate is None:
        if count is None:
            raise ValueError("a burst needs a count")
        return count
    # i / rate < duration  <=>  i < rate * duration; the epsilon keeps 100/s * 10 s at 1000, not 1001.
    n = max(0, math.ceil(rate * duration - 1e-9))
    return n if count is None else min(n, count)


def arrival_offsets(rate: float | None, duration: float, count: int | None = None) -> array:
    """Intended send time of every arrival relative to t0 in seconds: i / rate (all 0 for a burst)."""
    n = arrival_count(rate, duration, count)
    if rate is None:
        return array("d", bytes(8 * n))
    return array("d", (i / rate for i in range(n)))


def due_until(offsets: array, start: int, elapsed: float) -> int:
    """Index one past the last arrival due at elapsed seconds after t0, scanning from start."""
    i = start
    n = len(offsets)
    while i < n and offsets[i] <= elapsed:
        i += 1
    return i
