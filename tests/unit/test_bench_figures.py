"""The benchmark's figures: percentiles, per-second series and the lag verdict."""

from __future__ import annotations

import math

import pytest

from bench.series import judge_lag, percentile_series, rate_series, share_within, slope
from harness.percentiles import latency_summary, percentile

# -- percentiles and series -----------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5  # rank 1.5
    assert percentile(values, 95) == pytest.approx(3.85)  # rank 2.85
    ones_to_hundred = [float(i) for i in range(1, 101)]
    assert percentile(ones_to_hundred, 99) == pytest.approx(99.01)
    assert percentile(ones_to_hundred, 50) == pytest.approx(50.5)


def test_percentile_edge_cases() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_is_in_ms_and_ignores_unanswered() -> None:
    summary = latency_summary([0.001 * i for i in range(1, 101)] + [math.nan])
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == pytest.approx(100.0)
    assert latency_summary([])["p95"] is None


def test_share_within() -> None:
    assert share_within([1.0, 2.0, 6.0, 4.0], 5.0) == 0.75
    assert math.isnan(share_within([], 5.0))


def test_percentile_series_bins_by_time() -> None:
    times = [0.1, 0.2, 1.5, 3.2]
    values = [0.010, 0.030, 0.100, 0.005]
    series = percentile_series(times, values, width=1.0)
    assert series["t"] == [0.0, 1.0, 2.0, 3.0]
    assert series["count"] == [2, 1, 0, 1]
    assert series["p50"][0] == pytest.approx(20.0)
    assert series["p95"][2] is None  # an empty second stays visible as a gap
    assert series["max"][3] == pytest.approx(5.0)


def test_rate_series_counts_per_second() -> None:
    t, per_second = rate_series([0.1, 0.5, 0.9, 2.2])
    assert t == [0.0, 1.0, 2.0]
    assert per_second == [3.0, 0.0, 1.0]


def test_slope_and_lag_verdict() -> None:
    assert slope([(0, 0), (1, 2), (2, 4)]) == pytest.approx(2.0)
    assert slope([(0, 5)]) == 0.0
    flat = [(t / 2, 400.0 + (t % 3)) for t in range(40)]  # ~400 in flight at 1000/s: normal
    assert judge_lag(flat, 0, 20, 1000).bounded
    growing = [(t / 2, 100.0 * t) for t in range(40)]  # +200/s at 1000/s and 3,900 waiting
    verdict = judge_lag(growing, 0, 20, 1000)
    assert not verdict.bounded
    assert "growing" in verdict.reason
    assert not judge_lag([], 0, 20, 1000).bounded
