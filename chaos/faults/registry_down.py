"""registry-down: the Schema Registry stopped for registry_down_s, then started again."""

from __future__ import annotations

from chaos.run import Run
from chaos.scenario import Scenario


def inject(run: Run) -> None:
    """Stop the registry, hold, start it again."""
    registry = run.stack.registry
    with run.fault(f"schema registry stopped for {run.profile.registry_down_s:g}s") as fault:
        registry.stop()
        fault.evidence += run.hold(run.profile.registry_down_s, run.dependency_down("schemaRegistry"))
        registry.start()
    run.check("the order service saw the registry down", bool(fault.evidence))


SCENARIO = Scenario("registry-down", "schema registry stopped", inject)
