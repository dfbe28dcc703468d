"""poison-records: records the consumer can never decode, written into order-events among the valid orders.

Three kinds, in turn: garbage bytes, an unknown schema id, and a writer schema the reader cannot resolve.
Each must be dead-lettered once with its cause, and no valid order may be held up by them.
"""

from __future__ import annotations

import time

from confluent_kafka import Producer

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import DEAD_LETTER_HEADERS, ORDER_EVENTS
from harness.reconcile import Reconciliation
from harness.records import poison_records
from harness.topics import read_to_end
from messaging.registry import registry_client
from messaging.settings import kafka_client_config


def inject(run: Run) -> None:
    """Write the poison records into order-events, spread over poison_spread_s among the valid orders."""
    count, spread = run.profile.poison_records, run.profile.poison_spread_s
    registry = registry_client(run.system.kafka)
    records = poison_records(registry, count, run.rng, subject="chaos-incompatible-value")
    run.state["poison"] = {record.key: record.error_type for record in records}
    producer = Producer(kafka_client_config(run.system.kafka, **{"linger.ms": 5}))
    with run.fault(f"{count} poison records into {run.system.order_topic} over {spread:g}s") as fault:
        start = time.monotonic()
        for i, record in enumerate(records):
            due = start + spread * i / count  # spread among the valid orders, not one burst
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            producer.produce(run.system.order_topic, key=record.key.encode(), value=record.value)
            producer.poll(0)
        left = producer.flush(30)
        fault.evidence.append(f"{count - left} produced")
    run.check("every poison record was written", left == 0, f"{left} not confirmed")


def verify(run: Run, recon: Reconciliation) -> None:
    """Every poison record dead-lettered once with its cause, no valid order among them, no order held up."""
    expected: dict[str, str] = run.state["poison"]
    dlq_topic = run.system.env["fulfillment"][ORDER_EVENTS.dead_letter_env]
    seen: dict[str, list[str]] = {}
    for record in read_to_end(run.system.kafka, dlq_topic):
        headers = dict(record.headers() or [])
        key = (record.key() or b"").decode(errors="replace")
        seen.setdefault(key, []).append(headers.get(DEAD_LETTER_HEADERS.error_type, b"").decode())
    missing = [k for k in expected if k not in seen]
    run.check(f"all {len(expected)} poison records in the DLQ", not missing, f"{len(missing)} missing")
    wrong = [k for k, error_type in expected.items() if k in seen and error_type not in seen[k]]
    run.check("each dead-lettered with its cause", not wrong, f"{len(wrong)} with another error type")
    valid = [k for k in seen if k not in expected]
    run.check("no valid order in the DLQ", not valid, f"{len(valid)} valid records dead-lettered")
    copies = sum(len(v) - 1 for v in seen.values())
    run.check("each poison record dead-lettered once", copies == 0, f"{copies} extra copies")
    run.check_group_caught_up("consumer lag back to 0")
    run.check_pickup_sla(recon)


SCENARIO = Scenario("poison-records", "poison records among the orders", inject, verify=verify)
