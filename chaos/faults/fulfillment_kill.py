"""fulfillment-kill: the Fulfillment Service SIGKILLed `kills` times while orders are in flight, restarted each time."""

from __future__ import annotations

from chaos.run import Run
from chaos.scenario import Scenario


def inject(run: Run) -> None:
    """Kill the Fulfillment Service at moments it has orders in flight, and restart it."""
    service = run.system.fulfillment
    in_flight: list[int] = []

    def working() -> int | None:
        return run.system.fulfillment_health().get("inFlight") or None

    for n in range(1, run.profile.kills + 1):
        # After a restart the consumer first has to get its partitions back: let it work again for a
        # random while, then kill it at a moment when orders are in flight.
        run.poll(working, timeout=60, interval=0.1)
        run.hold(run.rng.uniform(*run.profile.kill_gap_s))
        busy = run.poll(working, timeout=30, interval=0.02)
        with run.fault(f"fulfillment service SIGKILL #{n}") as fault:
            service.kill()
            in_flight.append(int(busy or 0))
            fault.evidence.append(f"{busy or 0} records in flight when killed")
            service.start()
    run.check("every kill hit the service mid-processing", all(in_flight), f"in flight at each kill: {in_flight}")


SCENARIO = Scenario("fulfillment-kill", "fulfillment service SIGKILLed mid-processing, restarted", inject)
