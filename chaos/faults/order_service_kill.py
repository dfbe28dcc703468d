"""order-service-kill: the Order Service SIGKILLed `kills` times at random moments under load, restarted each time."""

from __future__ import annotations

from chaos.run import Run
from chaos.scenario import Scenario


def inject(run: Run) -> None:
    """Kill and restart the Order Service; POSTs fail meanwhile and are retried with their keys."""
    orders = run.system.orders
    statuses = []
    for n in range(1, run.profile.kills + 1):
        run.hold(run.rng.uniform(*run.profile.kill_gap_s))  # a random moment under load
        with run.fault(f"order service SIGKILL #{n}") as fault:
            orders.kill()
            assert orders.process is not None
            statuses.append(orders.process.returncode)
            fault.evidence.append(f"exit status {statuses[-1]}")
            orders.start()
    run.check(
        f"order service killed {run.profile.kills}x by SIGKILL", statuses == [-9] * run.profile.kills, str(statuses)
    )
    assert run.load is not None
    refused = sum(len(run.load.result.failures_between(f.started_at, f.ended_at or f.started_at)) for f in run.faults)
    run.check("POSTs failed while it was down (the kills hit the load)", refused > 0, f"{refused} failed attempts")


SCENARIO = Scenario(
    "order-service-kill",
    "order service SIGKILLed at random moments, restarted",
    inject,
    order_service_faulted=True,
)
