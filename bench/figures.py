"""A scenario's figures from what was recorded: create requests, event timestamps, lag and processes.

Times in the figures are seconds relative to the load's t0 (``shift`` maps a sampler's clock onto it);
latencies are reported in ms.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.events import EventTimes
from bench.samplers import MACHINE, LagSampler, ProcessSampler
from bench.series import judge_lag, percentile_series, rate_series, share_within
from harness.load import LoadResult, LoadSpec
from harness.orders import PICKUP_SLA_S
from harness.percentiles import latency_summary


def spec_json(spec: LoadSpec) -> dict[str, Any]:
    """The load's settings for the report (without the URL, which differs from run to run)."""
    data = asdict(spec)
    data.pop("url")
    return data


def load_figures(result: LoadResult) -> dict[str, Any]:
    """Create-request figures of one load run (times relative to its t0)."""
    ok_times = []
    ok_latencies = []
    answered_at = []
    for offset, latency, status in zip(result.offsets, result.latencies, result.statuses, strict=True):
        if 200 <= status < 300:
            ok_times.append(offset)
            ok_latencies.append(latency)
            answered_at.append(offset + latency)
    lateness = sorted(result.lateness)
    t, per_second = rate_series(answered_at)
    return {
        "arrivals": len(result.statuses),
        "ok": result.ok,
        "statuses": result.status_counts(),
        "latencyMs": latency_summary(ok_latencies),
        "achievedPerSecond": round(result.ok / result.elapsed, 1) if result.elapsed > 0 else None,
        "elapsedSeconds": round(result.elapsed, 3),
        "generator": {
            "cpuPercent": round(result.cpu_percent(), 1),
            "cpuSeconds": round(result.run_cpu_seconds, 2),
            "schedulerLatenessMs": {
                "p99": round(lateness[int(0.99 * (len(lateness) - 1))] * 1000, 3) if lateness else None,
                "max": round(lateness[-1] * 1000, 3) if lateness else None,
            },
            "connectionsOpened": result.connections_opened,
            "peakOutstanding": result.peak_outstanding if result.spec.mode == "open" else None,
        },
        "series": {
            "latency": percentile_series(ok_times, ok_latencies),
            # A burst's requests are all due at t0; by answer time its latencies show how the backlog drained.
            "latencyByAnswer": percentile_series(answered_at, ok_latencies),
            "answeredPerSecond": {"t": t, "value": per_second},
        },
    }


def event_figures(times: EventTimes, started_at: float) -> dict[str, Any]:
    """Pickup and time-to-terminal figures from the events' own timestamps."""
    pickup = times.pickup_latencies()
    terminal = times.terminal_latencies()
    created_rel = {oid: ts - started_at for oid, ts in times.created.items()}
    pickup_ids = list(pickup)
    t_picked, picked_per_second = rate_series(times.picked[oid] - started_at for oid in pickup_ids)
    return {
        "created": len(times.created),
        "pickedUp": len(pickup),
        "terminal": len(terminal),
        "outcomes": times.outcome_counts(),
        "pickupMs": latency_summary(pickup.values()),
        "terminalMs": latency_summary(terminal.values()),
        "pickedWithin5s": round(share_within(pickup.values(), PICKUP_SLA_S), 5) if pickup else None,
        "series": {
            "pickup": percentile_series([created_rel[oid] for oid in pickup_ids], [pickup[oid] for oid in pickup_ids]),
            "pickedPerSecond": {"t": t_picked, "value": picked_per_second},
        },
    }


def lag_figures(sampler: LagSampler, shift: float, start: float, end: float, rate: float | None) -> dict[str, Any]:
    """Lag series and the largest backlog; with an arrival rate also whether the backlog stayed bounded."""
    samples = dict(sampler.samples)
    samples["t"] = [round(t + shift, 3) for t in samples["t"]]
    points = [(t + shift, v) for t, v in sampler.backlog_points()]
    figures: dict[str, Any] = {"series": samples, "maxBacklog": max((v for _, v in points), default=None)}
    if rate is not None:
        figures["verdict"] = asdict(judge_lag(points, start, end, rate))
    return figures


def process_figures(sampler: ProcessSampler, shift: float, start: float, end: float, requests: int) -> dict[str, Any]:
    """RSS/CPU summary and series per process; CPU seconds (and per order) between start and end."""
    figures: dict[str, Any] = {}
    for name, series in sampler.series.items():
        summary = series.summary()
        cpu = series.cpu_between(start - shift, end - shift)
        summary["cpuSecondsDuringRun"] = round(cpu, 2) if cpu is not None else None
        if name in ("order-service", "fulfillment-service") and cpu is not None and requests:
            summary["cpuMsPerOrder"] = round(1000 * cpu / requests, 3)
        summary["series"] = {
            "t": [round(t + shift, 3) for t in series.t],
            "rssMb": series.rss_mb,
            "cpuPercent": series.cpu_percent,
        }
        figures[name] = summary
    machine = figures.get(MACHINE)
    if machine is not None and end > start:
        ours = sum(f["cpuSecondsDuringRun"] or 0.0 for n, f in figures.items() if n != MACHINE)
        busy = machine["cpuSecondsDuringRun"]
        if busy is not None:
            seconds = end - start
            machine["cpuPercentDuringRun"] = round(100 * busy / seconds, 1)
            # CPU used by processes outside this benchmark: on a shared machine, the noise in the figures.
            machine["othersCpuPercentDuringRun"] = round(max(0.0, 100 * (busy - ours) / seconds), 1)
    return figures
