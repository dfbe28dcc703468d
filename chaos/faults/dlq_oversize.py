"""dlq-oversize: poison records too large for a dead-letter copy as they are, written into order-events among
the valid orders.

Each is 1,010,000 bytes: the broker takes it, a producer at librdkafka's default message.max.bytes (1,000,000)
does not. Each must be dead-lettered once, cut to fit, with its original size in the headers, and no valid
order may be held up by them.
"""

from __future__ import annotations

import time

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import DEAD_LETTER_HEADERS
from harness.poison import OVERSIZED_BYTES, garbage, produce_raw
from harness.reconcile import Reconciliation


def inject(run: Run) -> None:
    """Write profile.oversized_records oversized poison records into order-events, one every half second."""
    count = run.profile.oversized_records
    keys = [f"oversized-{i}" for i in range(count)]
    run.state["oversized"] = keys
    with run.fault(f"{count} poison records of {OVERSIZED_BYTES} bytes into {run.system.order_topic}") as fault:
        for i, key in enumerate(keys):
            if i:
                time.sleep(0.5)  # among the valid orders, not one burst
            record = (key.encode(), garbage(OVERSIZED_BYTES, i))
            produce_raw(run.system.kafka, run.system.order_topic, [record])
        fault.evidence.append(f"{count} produced")


def verify(run: Run, recon: Reconciliation) -> None:
    """Every oversized record dead-lettered once, truncated, with its size; no valid order held up."""
    keys: list[str] = run.state["oversized"]
    seen = run.dead_letters()
    missing = [k for k in keys if k not in seen]
    run.check(f"all {len(keys)} oversized records in the DLQ", not missing, f"{len(missing)} missing")
    copies = sum(len(seen[k]) - 1 for k in keys if k in seen)
    run.check("each oversized record dead-lettered once", copies == 0, f"{copies} extra copies")
    wrong = [
        k
        for k in keys
        for headers in seen.get(k, [])
        if headers.get(DEAD_LETTER_HEADERS.truncated) != "true"
        or headers.get(DEAD_LETTER_HEADERS.original_size) != str(OVERSIZED_BYTES)
    ]
    run.check("each copy marked truncated with its original size", not wrong, f"{len(wrong)} not")
    run.check_group_caught_up("consumer lag back to 0")
    run.check_pickup_sla(recon)


SCENARIO = Scenario("dlq-oversize", "poison records too large to dead-letter as they are", inject, verify=verify)
