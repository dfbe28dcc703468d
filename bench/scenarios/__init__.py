"""The benchmark scenarios, one module each; their names are what ``--scenario`` accepts.

| name | module | what |
| --- | --- | --- |
| steady-100, steady-300, steady-1000 | steady | open loop at a fixed rate |
| capacity | capacity | closed loop: the highest create throughput |
| burst | burst | N orders due at the same instant |
| ramp | ramp | rising open-loop steps until one fails |
| observability-cost | observability_cost | CPU per order with metrics and tracing off/on |
| long | long | a million orders, for memory (only when named) |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.environment import BenchRun
from bench.scenarios import burst, capacity, long, observability_cost, ramp, steady

STEADY_RATES = steady.RATES
DEFAULT_SCENARIOS = (*STEADY_RATES, "capacity", "burst", "ramp", "observability-cost")
ALL_SCENARIOS = (*DEFAULT_SCENARIOS, "long")

_RUNNERS: dict[str, Callable[[BenchRun], dict[str, Any]]] = {
    "capacity": capacity.run,
    "burst": burst.run,
    "ramp": ramp.run,
    "long": long.run,
    "observability-cost": observability_cost.run,
}


def run_scenario(bench: BenchRun, name: str) -> dict[str, Any]:
    """Run the scenario called name on bench's stack; its figures. ValueError for an unknown name."""
    if name in STEADY_RATES:
        return steady.run(bench, name, STEADY_RATES[name])
    if name not in _RUNNERS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)}")
    return _RUNNERS[name](bench)
