"""broker-down: the broker stopped (SIGTERM, then SIGKILL) for broker_down_s each time, then restarted."""

from __future__ import annotations

from chaos.run import Run
from chaos.scenario import Scenario


def inject(run: Run) -> None:
    """Stop the broker gracefully, restart it, let the system catch up; then the same with SIGKILL."""
    broker = run.stack.broker
    for how, take_down in (("SIGTERM", broker.stop), ("SIGKILL", broker.kill)):
        with run.fault(f"broker stopped ({how}) for {run.profile.broker_down_s:g}s, then restarted") as fault:
            take_down()
            fault.evidence += run.hold(run.profile.broker_down_s, run.dependency_down("kafka"))
            broker.start()
        run.check(f"broker {how}: the order service saw Kafka down", bool(fault.evidence))
        if how == "SIGTERM":
            # The second fault starts from a caught-up system, so the two do not blur into one.
            caught_up = run.caught_up(run.profile.drain_timeout_s)
            fault.evidence.append(f"caught up before the next fault: {caught_up}")


SCENARIO = Scenario("broker-down", "broker stopped (SIGTERM, then SIGKILL), restarted", inject)
