"""poison-records: records the consumer can never decode, written into order-events among the valid orders.

Three kinds, in turn: garbage bytes, an unknown schema id, and a writer schema the reader cannot resolve.
Each must be dead-lettered once with its cause, and no valid order may be held up by them.
"""

from __future__ import annotations

import io
import json
import struct
import time

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from chaos.run import Run
from chaos.scenario import Scenario
from events.topology import DEAD_LETTER_HEADERS
from harness.reconcile import Reconciliation
from harness.topics import read_to_end

# Writer schema of the "incompatible" poison records: a record the reader schema cannot resolve.
_INCOMPATIBLE_SCHEMA = {
    "type": "record",
    "name": "OrderCreated",
    "namespace": "orderprocessing.events",
    "fields": [{"name": "orderId", "type": "long"}, {"name": "note", "type": "string"}],
}
_POISON_KINDS = {
    "garbage": "InvalidWireFormat",
    "unknown-schema-id": "UnknownSchemaId",
    "incompatible-writer": "IncompatibleWriterSchema",
}


def _poison_records(run: Run, count: int) -> list[tuple[str, str, bytes]]:
    """(key, kind, value) for count records the consumer can never decode."""
    registry = SchemaRegistryClient({"url": run.system.registry_url})
    schema_id = registry.register_schema("chaos-incompatible-value", Schema(json.dumps(_INCOMPATIBLE_SCHEMA), "AVRO"))
    writer = fastavro.parse_schema(_INCOMPATIBLE_SCHEMA)
    kinds = list(_POISON_KINDS)
    records = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "garbage":
            value = bytes([run.rng.randrange(1, 256)]) + run.rng.randbytes(run.rng.randrange(0, 64))
        elif kind == "unknown-schema-id":
            value = struct.pack(">bI", 0, run.rng.randrange(1_000_000_000, 2_000_000_000)) + run.rng.randbytes(20)
        else:
            body = io.BytesIO()
            fastavro.schemaless_writer(body, writer, {"orderId": i, "note": "not an order"})
            value = struct.pack(">bI", 0, schema_id) + body.getvalue()
        records.append((f"poison-{i}", kind, value))
    return records


def inject(run: Run) -> None:
    """Write the poison records into order-events, spread over poison_spread_s among the valid orders."""
    count, spread = run.profile.poison_records, run.profile.poison_spread_s
    records = _poison_records(run, count)
    run.state["poison"] = {key: kind for key, kind, _value in records}
    producer = Producer({"bootstrap.servers": run.system.bootstrap_servers, "linger.ms": 5})
    with run.fault(f"{count} poison records into {run.system.order_topic} over {spread:g}s") as fault:
        start = time.monotonic()
        for i, (key, _kind, value) in enumerate(records):
            due = start + spread * i / count  # spread among the valid orders, not one burst
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            producer.produce(run.system.order_topic, key=key.encode(), value=value)
            producer.poll(0)
        left = producer.flush(30)
        fault.evidence.append(f"{count - left} produced")
    run.check("every poison record was written", left == 0, f"{left} not confirmed")


def verify(run: Run, recon: Reconciliation) -> None:
    """Every poison record dead-lettered once with its cause, no valid order among them, no order held up."""
    expected: dict[str, str] = run.state["poison"]
    dlq_topic = run.system.env["fulfillment"]["ORDER_EVENTS_DLQ_TOPIC"]
    seen: dict[str, list[str]] = {}
    for record in read_to_end(run.system.bootstrap_servers, dlq_topic):
        headers = dict(record.headers() or [])
        key = (record.key() or b"").decode(errors="replace")
        seen.setdefault(key, []).append(headers.get(DEAD_LETTER_HEADERS.error_type, b"").decode())
    missing = [k for k in expected if k not in seen]
    run.check(f"all {len(expected)} poison records in the DLQ", not missing, f"{len(missing)} missing")
    wrong = [k for k, kind in expected.items() if k in seen and _POISON_KINDS[kind] not in seen[k]]
    run.check("each dead-lettered with its cause", not wrong, f"{len(wrong)} with another error type")
    valid = [k for k in seen if k not in expected]
    run.check("no valid order in the DLQ", not valid, f"{len(valid)} valid records dead-lettered")
    copies = sum(len(v) - 1 for v in seen.values())
    run.check("each poison record dead-lettered once", copies == 0, f"{copies} extra copies")
    run.check_group_caught_up("consumer lag back to 0")
    delay = recon.max_pickup_delay_s
    run.check(
        f"no valid order picked up later than {run.profile.pickup_sla_s:g}s",
        delay is not None and delay <= run.profile.pickup_sla_s,
        f"max pickup delay {delay}s",
    )


SCENARIO = Scenario("poison-records", "poison records among the orders", inject, verify=verify)
