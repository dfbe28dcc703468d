"""burst: burst_orders orders (10,000, quick 2,000) all due at the same instant over 1,000 connections."""

from __future__ import annotations

from typing import Any

from bench.environment import BenchRun, Environment
from harness.load import LoadSpec


def run(bench: BenchRun) -> dict[str, Any]:
    """Send the burst and measure until every accepted order is terminal."""
    p = bench.profile
    with Environment(bench, "burst") as env:
        env.warm_load(200, p.steady_connections)
        spec = LoadSpec(
            env.order_url, rate=None, count=p.burst_orders, duration=0, connections=p.burst_connections, tag=env.tag
        )
        return env.measure(spec, kind="burst")
