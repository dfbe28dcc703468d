"""long: long_orders orders (1,000,000) for memory; only run when named."""

from __future__ import annotations

from typing import Any

from bench.environment import BenchRun, Environment
from harness.load import LoadSpec

LONG_TIME_CAP_S = 4 * 3600.0  # the closed-loop long run stops here even if the count is not reached


def run(bench: BenchRun) -> dict[str, Any]:
    """long_orders orders for memory: open loop at long_rate, or closed loop (as fast as the service
    accepts them, so the count is always reached) when long_rate is 0."""
    p = bench.profile
    with Environment(bench, "long") as env:
        env.warm_load(p.long_rate or 200.0, p.steady_connections)
        if p.long_rate > 0:
            spec = LoadSpec(
                env.order_url,
                rate=p.long_rate,
                duration=p.long_orders / p.long_rate,
                count=p.long_orders,
                connections=p.steady_connections,
                tag=env.tag,
            )
        else:
            spec = LoadSpec(
                env.order_url,
                mode="closed",
                duration=LONG_TIME_CAP_S,
                count=p.long_orders,
                connections=p.capacity_connections,
                tag=env.tag,
            )
        return env.measure(spec, kind="long", drain_timeout=max(p.drain_timeout_s, 3600), settle_s=10, sample_every=2.0)
