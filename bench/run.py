"""A benchmark run: one Kafka broker and Schema Registry for all of it, the ceilings, then each scenario.

The JVMs are slow to start and need warming up, so they serve the whole run; every scenario gets fresh
services of its own (``bench.environment``). A scenario that fails is recorded with its error and the
run goes on; results so far are rewritten to ``partial.json`` after every scenario.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ceilings import measure_ceilings
from bench.environment import Environment
from bench.profile import Profile
from bench.profiler import Profiler
from bench.scenarios import STEADY_RATES, run_scenario
from bench.topology import DEFAULT_RATE, Topology, run_topologies
from infra.stack import LocalStack

log = logging.getLogger("bench")


class Bench:
    """Owns the shared stack (a context manager: started on entering) and runs scenarios into JSON-ready dicts."""

    def __init__(
        self,
        run_dir: Path,
        profile: Profile,
        *,
        profile_services: bool = False,
        profile_mode: str = "gil",
        keep_data: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.profile = profile
        self.profile_services = profile_services
        self.profile_mode = profile_mode
        self.keep_data = keep_data
        self.stack = LocalStack.ephemeral(run_dir / "stack")

    def __enter__(self) -> Bench:
        log.info("starting Kafka and the Schema Registry in %s", self.stack.directory)
        self.stack.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()
        if not self.keep_data:
            shutil.rmtree(self.stack.directory / "kafka" / "data", ignore_errors=True)
            for database in self.run_dir.glob("*/*.db*"):
                database.unlink(missing_ok=True)

    def run(
        self, names: list[str], topologies: list[Topology] | None = None, rate: float = DEFAULT_RATE
    ) -> dict[str, Any]:
        """Ceilings for what the scenarios compare with, then each scenario, then each topology (bench.topology,
        at rate orders/s, under "topologies" when any); failures are recorded."""
        results: dict[str, Any] = {"baselines": {}, "scenarios": {}}
        rates = sorted({STEADY_RATES[n] for n in names if n in STEADY_RATES})
        if rates or "capacity" in names:
            results["baselines"] = self.guarded("baselines", lambda: measure_ceilings(self, rates, "capacity" in names))
        for name in names:
            results["scenarios"][name] = self.guarded(name, lambda name=name: run_scenario(self, name))
            self.write_partial(results)
        if topologies:
            results["topologies"] = run_topologies(self, topologies, rate, guard=self.guarded)
            self.write_partial(results)
        return results

    def guarded(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """run()'s figures with its wall time, or its error and traceback if it raised."""
        log.info("=== %s ===", name)
        started = time.monotonic()
        try:
            result = run()
        except Exception as exc:
            log.exception("%s failed", name)
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        result["wallSeconds"] = round(time.monotonic() - started, 1)
        return result

    def write_partial(self, results: dict[str, Any]) -> None:
        """Write the results so far: a long run that dies late still leaves its finished scenarios behind."""
        (self.run_dir / "partial.json").write_text(json.dumps(results, default=str))

    def start_profilers(self, env: Environment, label: str, seconds: float) -> list[Profiler]:
        """py-spy on both services for seconds, when the run profiles (--profile)."""
        if not self.profile_services or seconds <= 0:
            return []
        return [
            Profiler(pid, env.dir / f"{label}.{name}.pyspy.txt", seconds, self.profile_mode)
            for name, pid in (
                ("order-service", env.system.orders.pid),
                ("fulfillment-service", env.system.fulfillment.pid),
            )
            if pid is not None
        ]

    def profile_files(self, env: Environment, label: str) -> dict[str, str]:
        """The py-spy outputs written for a load phase, by service."""
        if not self.profile_services:
            return {}
        found = {}
        for name in ("order-service", "fulfillment-service"):
            path = env.dir / f"{label}.{name}.pyspy.txt"
            if path.exists():
                found[name] = str(path)
        return found
