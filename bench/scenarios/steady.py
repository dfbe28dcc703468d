"""steady-100, steady-300, steady-1000: an open loop at a fixed rate for steady_s seconds (60, quick 10)."""

from __future__ import annotations

from typing import Any

from bench.environment import BenchRun, Environment
from harness.load import LoadSpec

RATES = {"steady-100": 100.0, "steady-300": 300.0, "steady-1000": 1000.0}


def run(bench: BenchRun, name: str, rate: float) -> dict[str, Any]:
    """Warm up at rate, then measure rate orders per second until every accepted order is terminal."""
    p = bench.profile
    with Environment(bench, name) as env:
        env.warm_load(rate, p.steady_connections)
        spec = LoadSpec(env.order_url, rate=rate, duration=p.steady_s, connections=p.steady_connections, tag=env.tag)
        return env.measure(spec, kind="steady")
