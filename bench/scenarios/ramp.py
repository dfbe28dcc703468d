"""ramp: rising open-loop steps (20 s each, 100 ... 3,000/s; quick 5 s, 100 ... 2,000/s) until one fails.

Each step runs a fresh generator process at the next rate. A step passes when create P95 <= 500 ms, at least
99 % of requests were answered 2xx and the backlog stayed bounded; the first failing step ends the ramp.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from bench.environment import BenchRun, Environment, Sampling
from bench.events import all_terminal
from bench.figures import event_figures, lag_figures, load_figures, process_figures
from bench.series import judge_lag, percentile_series, rate_series
from harness.load import LoadResult, LoadSpec
from harness.percentiles import latency_summary

log = logging.getLogger("bench")

RAMP_P95_LIMIT_MS = 500.0


def run(bench: BenchRun) -> dict[str, Any]:
    """Rising steps until create P95 exceeds 500 ms, the backlog grows or requests fail."""
    p = bench.profile
    steps: list[dict[str, Any]] = []
    results: list[LoadResult] = []
    with Environment(bench, "ramp") as env:
        env.warm_load(p.ramp_rates[0], p.steady_connections)
        with env.sampling() as sampling:
            for rate in p.ramp_rates:
                spec = LoadSpec(
                    env.order_url, rate=rate, duration=p.ramp_step_s, connections=p.steady_connections, tag=env.tag
                )
                result = env.load(spec, f"step-{rate:g}", sampling)
                results.append(result)
                step = _ramp_step(rate, result, sampling)
                steps.append(step)
                log.info("ramp %g/s: %s", rate, step["verdict"])
                if not step["passed"]:
                    break
            collector = env.collector()
            try:
                # The steps' pickup figures; a failed last step may not drain, hence the bound.
                collector.follow(all_terminal(sum(r.ok for r in results)), min(p.drain_timeout_s, 60))
            finally:
                collector.close()
        first = results[0].started_at
        for step, result in zip(steps, results, strict=True):
            window = (result.started_at, result.started_at + p.ramp_step_s)
            pickups = [
                lat
                for oid, lat in collector.times.pickup_latencies().items()
                if window[0] <= collector.times.created[oid] < window[1]
            ]
            step["pickupMs"] = latency_summary(pickups)
    passed = [s["rate"] for s in steps if s["passed"]]
    shift = sampling.origin - first
    end = results[-1].started_at - first + p.ramp_step_s
    return {
        "kind": "ramp",
        "stepSeconds": p.ramp_step_s,
        "steps": steps,
        "maxSustainedRate": max(passed) if passed else None,
        "lag": lag_figures(sampling.lag, shift, 0.0, end, None),
        "processes": process_figures(sampling.procs, shift, 0.0, end, sum(r.ok for r in results)),
        "series": _concat_series(results, first),
        "events": event_figures(collector.times, first),
    }


def _ramp_step(rate: float, result: LoadResult, sampling: Sampling) -> dict[str, Any]:
    figures = load_figures(result)
    shift = sampling.origin - result.started_at
    points = [(t + shift, v) for t, v in sampling.lag.backlog_points()]
    verdict = judge_lag(points, 0.0, result.spec.duration, rate)
    p95 = figures["latencyMs"]["p95"]
    reasons = []
    if p95 is None or p95 > RAMP_P95_LIMIT_MS:
        reasons.append(f"create P95 {_ms_text(p95)} > {RAMP_P95_LIMIT_MS:g} ms")
    if result.ok < 0.99 * len(result.statuses):
        reasons.append(f"only {result.ok} of {len(result.statuses)} requests answered 2xx")
    if not verdict.bounded:
        reasons.append(verdict.reason)
    return {
        "rate": rate,
        "achievedPerSecond": figures["achievedPerSecond"],
        "latencyMs": figures["latencyMs"],
        "statuses": figures["statuses"],
        "lag": asdict(verdict),
        "passed": not reasons,
        "verdict": "; ".join(reasons) or "ok",
    }


def _ms_text(value: float | None) -> str:
    return "none answered" if value is None else f"{value:,.1f} ms"


def _concat_series(results: list[LoadResult], origin: float) -> dict[str, Any]:
    """Create latency and answers per second across the ramp's steps, on one clock."""
    times: list[float] = []
    values: list[float] = []
    answered: list[float] = []
    offered_t: list[float] = []
    offered: list[float | None] = []
    for result in results:
        shift = result.started_at - origin
        offered_t += [shift, shift + result.spec.duration, shift + result.spec.duration]
        offered += [result.spec.rate or 0.0, result.spec.rate or 0.0, None]  # None: a gap between steps
        for offset, latency, status in zip(result.offsets, result.latencies, result.statuses, strict=True):
            if 200 <= status < 300:
                times.append(offset + shift)
                values.append(latency)
                answered.append(offset + latency + shift)
    t, per_second = rate_series(answered)
    return {
        "latency": percentile_series(times, values),
        "answeredPerSecond": {"t": t, "value": per_second},
        "offered": {"t": offered_t, "value": offered},
    }
