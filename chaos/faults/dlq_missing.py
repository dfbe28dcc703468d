"""dlq-missing: poison records among the orders while the dead-letter topic does not exist.

The services run with CREATE_TOPICS=false (the event topics are made beforehand, the dead-letter topics are not;
the broker does not create topics on its own). The first poison record must have the dead-letter topic created,
every poison record must be dead-lettered once (or kept in the local spool), the Fulfillment Service's health
must count them, and no valid order may be held up.
"""

from __future__ import annotations

import time

from chaos.run import Run
from chaos.scenario import Scenario
from harness.poison import OVERSIZED_BYTES, garbage, produce_raw
from harness.reconcile import Reconciliation
from harness.system import System


def prepare(system: System) -> None:
    """The event topics exist before the services start; the dead-letter topics do not."""
    system.create_topics(dead_letters=False)


def inject(run: Run) -> None:
    """Write profile.poison_records small poison records and one oversized one into order-events, spread over
    profile.poison_spread_s among the valid orders."""
    count, spread = run.profile.poison_records, run.profile.poison_spread_s
    records = [(f"poison-{i}".encode(), garbage(run.rng.randrange(1, 64), i)) for i in range(count)]
    records.insert(count // 2, (b"poison-oversized", garbage(OVERSIZED_BYTES)))
    run.state["poison"] = [key.decode() for key, _ in records]
    topic = run.system.order_topic
    with run.fault(f"{len(records)} poison records into {topic} with no dead-letter topic") as fault:
        start, batches = time.monotonic(), 10
        for b in range(batches):  # spread among the valid orders, not one burst
            due = start + spread * b / batches
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            produce_raw(run.system.kafka, topic, records[b::batches])
        fault.evidence.append(f"{len(records)} produced")


def verify(run: Run, recon: Reconciliation) -> None:
    """Every poison record dead-lettered once in the created topic or spooled; health counts them; no order
    held up."""
    keys: list[str] = run.state["poison"]
    seen = run.dead_letters()
    health = run.poll(lambda: run.system.dead_letters(), timeout=10) or {}
    spooled = health.get("spooled") or 0
    missing = [k for k in keys if k not in seen]
    run.check(
        f"all {len(keys)} poison records in the created DLQ or the spool",
        len(missing) <= spooled,
        f"{len(missing)} not in the DLQ, {spooled} spooled",
    )
    copies = sum(len(seen[k]) - 1 for k in keys if k in seen)
    run.check("each poison record dead-lettered once", copies == 0, f"{copies} extra copies")
    counted = health.get("published", 0) + spooled
    run.check("fulfillment health counts them", counted == len(keys), f"health: {health}")
    run.check_group_caught_up("consumer lag back to 0")
    run.check_pickup_sla(recon)


SCENARIO = Scenario(
    "dlq-missing",
    "poison records while the dead-letter topic does not exist",
    inject,
    env={"CREATE_TOPICS": "false"},
    verify=verify,
    prepare=prepare,
)
