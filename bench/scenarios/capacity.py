"""capacity: a closed loop over 64 connections for capacity_s seconds (15, quick 5): the highest create throughput."""

from __future__ import annotations

from typing import Any

from bench.environment import BenchRun, Environment
from bench.figures import lag_figures, load_figures, process_figures, spec_json
from harness.load import LoadSpec


def run(bench: BenchRun) -> dict[str, Any]:
    """Maximum create throughput: every connection posts back to back for capacity_s."""
    p = bench.profile
    with Environment(bench, "capacity") as env:
        env.warm_load(200, p.capacity_connections)
        spec = LoadSpec(
            env.order_url, mode="closed", duration=p.capacity_s, connections=p.capacity_connections, tag=env.tag
        )
        with env.sampling() as sampling:
            result = env.load(spec, "load", sampling)
    shift = sampling.origin - result.started_at
    return {
        "kind": "capacity",
        "spec": spec_json(spec),
        "load": load_figures(result),
        "processes": process_figures(sampling.procs, shift, 0.0, max(spec.duration, result.elapsed), result.ok),
        "lag": lag_figures(sampling.lag, shift, 0.0, spec.duration, None),
        "profile": bench.profile_files(env, "load"),
    }
