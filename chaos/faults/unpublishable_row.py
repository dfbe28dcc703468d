"""unpublishable-row: among the load, an order whose event can never be published (a valid order of about
1.6 MB, accepted because the body and event limits are raised above the producer's message.max.bytes).

Its outbox row must be parked with its reason (readiness degraded, the repair functions list it), while every
order of the load is published and fulfilled as if it were not there; the scenario then plays the operator:
retries it (parked again, since nothing changed) and discards it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from chaos.run import Run
from chaos.scenario import Scenario
from harness.order_bodies import OVERSIZE_ORDER_LIMITS, oversize_order
from order_service import store
from outbox.parking import discard_parked, list_parked, retry_parked
from persistence.engine import make_engine


def inject(run: Run) -> None:
    """Post the oversize order, hold while the load goes on, check it is parked and reported, retry, discard."""
    engine = make_engine(run.system.env["order"]["DATABASE_URL"])
    try:
        with run.fault("an order whose event exceeds the producer's size limit") as fault:
            response = httpx.post(
                f"{run.system.orders.url}/api/orders",
                content=oversize_order(customer="chaos-oversize"),
                headers={"content-type": "application/json"},
                timeout=60,
            )
            run.check("the oversize order was accepted", response.status_code == 201, str(response.status_code))
            if response.status_code != 201:
                return
            order_id = response.json()["orderId"]
            run.ignored_orders.add(order_id)  # not the load's: reported as parked, never terminal
            ready = run.poll(lambda: (r := run.system.order_readiness()).get("outboxParked") and r, timeout=20)
            fault.evidence += run.hold(run.profile.registry_down_s, _parked_probe(run))
            run.check(
                "readiness reports the parked event (degraded)",
                bool(ready) and ready["status"] == "degraded" and "MSG_SIZE_TOO_LARGE" in ready["outboxParkedReason"],
                str({k: ready.get(k) for k in ("status", "outboxParked", "outboxParkedReason")} if ready else None),
            )
            parked = [row for row in list_parked(engine, store.outbox) if row.key == order_id]
            run.check(
                "the repair functions list the order as parked with its reason",
                len(parked) == 1 and "MSG_SIZE_TOO_LARGE" in (parked[0].failure_reason or ""),
                parked[0].failure_reason or "" if parked else "not listed",
            )
            status = httpx.get(f"{run.system.orders.url}/api/orders/{order_id}", timeout=10).json()["status"]
            run.check("the parked order is reported, not published (Pending)", status == "Pending", status)
            if parked:
                retried = retry_parked(engine, store.outbox, parked[0].id)
                again = run.poll(
                    lambda: [r for r in list_parked(engine, store.outbox) if r.key == order_id and r.attempts > 1],
                    timeout=20,
                )
                run.check("a retry without a fix parks it again", retried and bool(again))
                discarded = discard_parked(engine, store.outbox, parked[0].id)
                run.check("discarding removes it", discarded is not None and discarded.key == order_id)
            run.state["oversize"] = order_id
    finally:
        engine.dispose()


def _parked_probe(run: Run) -> Callable[[], str | None]:
    def probe() -> str | None:
        ready = run.system.order_readiness()
        return (
            f"readiness {ready['status']} with {ready.get('outboxParked')} parked"
            if ready.get("outboxParked")
            else None
        )

    return probe


SCENARIO = Scenario(
    "unpublishable-row", "an order whose event can never be published", inject, env=OVERSIZE_ORDER_LIMITS
)
