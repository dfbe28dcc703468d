"""Figures from raw samples: per-second series and percentiles over time, the share within a limit, and
whether a backlog stayed bounded (the lag verdict)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.percentiles import PERCENTILES, percentile


def share_within(seconds: Iterable[float], limit: float) -> float:
    """The share (0..1) of values at most limit, NaN ignored; NaN when there are none."""
    values = [v for v in seconds if not math.isnan(v)]
    return sum(1 for v in values if v <= limit) / len(values) if values else math.nan


# -- time series --------------------------------------------------------------------------------------


def binned(
    times: Sequence[float], values: Sequence[float], width: float, start: float = 0.0
) -> list[tuple[float, list[float]]]:
    """Values grouped into consecutive bins of `width` seconds by their time; (bin start, values)."""
    if not times:
        return []
    bins: dict[int, list[float]] = {}
    for t, v in zip(times, values, strict=True):
        if math.isnan(v):
            continue
        bins.setdefault(int((t - start) // width), []).append(v)
    if not bins:
        return []
    return [(start + k * width, sorted(bins.get(k, []))) for k in range(min(bins), max(bins) + 1)]


def percentile_series(
    times: Sequence[float], values: Sequence[float], width: float = 1.0, scale: float = 1000.0
) -> dict[str, list[float | None]]:
    """Per-bin count and p50/p95/p99/max (ms) of values keyed by time, for plots."""
    series: dict[str, list[float | None]] = {"t": [], "count": [], "p50": [], "p95": [], "p99": [], "max": []}
    for start, vals in binned(times, values, width):
        series["t"].append(round(start, 3))
        series["count"].append(len(vals))
        for q in PERCENTILES:
            series[f"p{q:g}"].append(round(percentile(vals, q) * scale, 3) if vals else None)
        series["max"].append(round(vals[-1] * scale, 3) if vals else None)
    return series


def rate_series(times: Iterable[float], width: float = 1.0) -> tuple[list[float], list[float]]:
    """Events per second in consecutive bins of `width` seconds."""
    counts: dict[int, int] = {}
    for t in times:
        counts[int(t // width)] = counts.get(int(t // width), 0) + 1
    if not counts:
        return [], []
    keys = range(min(counts), max(counts) + 1)
    return [k * width for k in keys], [counts.get(k, 0) / width for k in keys]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) points (value per second); 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


@dataclass(frozen=True)
class LagVerdict:
    """Whether a backlog stayed bounded, with the figures behind it (backlog in orders, slope per second)."""

    bounded: bool
    slope_per_s: float
    end_backlog: float
    max_backlog: float
    reason: str


def judge_lag(
    samples: Sequence[tuple[float, float]], start: float, end: float, rate: float, *, growth_share: float = 0.05
) -> LagVerdict:
    """Whether the backlog stayed bounded while load was offered at `rate` between start and end.

    The backlog normally holds the orders in flight (about rate x provider latency), so only two things
    count as unbounded: it is still growing over the second half of the window (least-squares slope above
    `growth_share` of the arrival rate) while more than one second of arrivals waits, or more than two
    seconds of arrivals wait at the end.
    """
    window = [(t, v) for t, v in samples if start <= t <= end]
    if not window:
        return LagVerdict(False, math.nan, math.nan, math.nan, "no lag samples")
    half = [(t, v) for t, v in window if t >= (start + end) / 2] or window
    growth = slope(half)
    end_backlog = window[-1][1]
    max_backlog = max(v for _, v in window)
    reasons = []
    if growth > growth_share * rate and end_backlog > rate:
        reasons.append(f"backlog still growing {growth:.0f}/s (> {growth_share:.0%} of {rate:g}/s)")
    if end_backlog > 2 * rate:
        reasons.append(f"{end_backlog:.0f} waiting at the end (> 2 s of arrivals)")
    return LagVerdict(not reasons, growth, end_backlog, max_backlog, "; ".join(reasons) or "ok")
