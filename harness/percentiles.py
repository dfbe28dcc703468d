"""Percentiles of latencies, one definition for the load generator's summary and the benchmark's figures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

PERCENTILES = (50.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """q-th percentile (0-100) of ascending values, interpolating linearly between closest ranks; NaN if empty.

    Same definition as numpy's default ("linear"): rank q/100 * (n - 1). Raises ValueError for q outside 0..100.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    rank = q / 100.0 * (n - 1)
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def latency_summary(seconds: Iterable[float], scale: float = 1000.0) -> dict[str, float | int | None]:
    """count, p50, p95, p99, max and mean of latencies given in seconds (NaN ignored), reported in ms (scale)."""
    values = sorted(v for v in seconds if not math.isnan(v))
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    summary: dict[str, float | int | None] = {"count": len(values)}
    for q in PERCENTILES:
        summary[f"p{q:g}"] = round(percentile(values, q) * scale, 3)
    summary["max"] = round(values[-1] * scale, 3)
    summary["mean"] = round(sum(values) / len(values) * scale, 3)
    return summary
