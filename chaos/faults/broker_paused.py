"""broker-paused: the broker hung (SIGSTOP) for pause_s, then resumed (SIGCONT)."""

from __future__ import annotations

from chaos.run import Run
from chaos.scenario import Scenario


def inject(run: Run) -> None:
    """Freeze the broker's process group, hold, continue it."""
    broker = run.stack.broker
    with run.fault(f"broker paused (SIGSTOP) for {run.profile.pause_s:g}s, then resumed") as fault:
        broker.pause()
        try:
            fault.evidence += run.hold(run.profile.pause_s, run.dependency_down("kafka"))
        finally:
            broker.resume()
    run.check("the order service saw Kafka hang", bool(fault.evidence))


SCENARIO = Scenario("broker-paused", "broker hung (SIGSTOP), then resumed", inject)
