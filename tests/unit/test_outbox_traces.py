"""An outbox row carries the trace context of the work that wrote it, and the relay publishes it in a span of that
trace with W3C `traceparent`/`tracestate` headers; a row written outside any trace (or before the column existed)
goes out without them.

The relay runs against librdkafka's built-in mock cluster with a temporary SQLite outbox; the codec is a stand-in
without registry."""

from __future__ import annotations

import json
import uuid

from confluent_kafka import Consumer, Message, Producer
from sqlalchemy import insert

from harness.waiting import wait_until
from observability.trace_context import capture, from_headers
from outbox.claims import OutboxClaims
from outbox.relay import OutboxRelay
from outbox.table import OutboxEntry, add_to_outbox
from tests.unit import outbox_stand_ins
from tests.unit.outbox_stand_ins import TOPIC, Event, StandInCodec
from tests.unit.span_recorder import SpanRecorder

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


outbox = outbox_stand_ins.outbox
mock_cluster = outbox_stand_ins.mock_cluster


def test_an_entry_written_in_a_span_carries_that_span_and_one_outside_any_carries_none(outbox):
    engine, table = outbox
    recorder = SpanRecorder()
    with recorder.tracer.start_as_current_span("POST /api/orders") as span:
        traced = OutboxEntry.of(TOPIC, "k1", Event(text="a"))
    untraced = OutboxEntry.of(TOPIC, "k2", Event(text="b"))
    with engine.begin() as conn:
        add_to_outbox(conn, table, [traced, untraced])

    first, second = OutboxClaims(engine, table, "me:1:1.00").claim(limit=10, lease_seconds=30)

    context = span.get_span_context()
    assert json.loads(first.trace_context or "{}")["traceparent"].startswith(
        f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    )
    assert second.trace_context is None


def published(servers: str, count: int) -> dict[str, Message]:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    seen: dict[str, Message] = {}

    def enough() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            seen[message.key().decode()] = message
        return len(seen) >= count

    try:
        wait_until(enough, 30, interval=0, message=f"{count} records")
    finally:
        consumer.close()
    return seen


def test_the_relay_publishes_a_traced_row_in_a_producer_span_whose_context_its_headers_carry(outbox, mock_cluster):
    engine, table = outbox
    stored = capture(from_headers([("traceparent", TRACEPARENT), ("tracestate", "vendor=x")]))
    with engine.begin() as conn:
        row = {"topic": TOPIC, "event_type": "Event", "payload": '{"text": "a"}', "created_at": 1.0}
        conn.execute(insert(table).values(key="traced", trace_context=stored, **row))
        conn.execute(insert(table).values(key="untraced", **row))  # as rows written before the column existed
    recorder = SpanRecorder()
    producer = Producer({"bootstrap.servers": mock_cluster, "enable.idempotence": True, "linger.ms": 5})
    relay = OutboxRelay(engine, table, producer, {"Event": StandInCodec()}, idle_poll_seconds=0.05,
                        tracer=recorder.tracer)  # fmt: skip
    relay.start()
    try:
        records = published(mock_cluster, 2)
        wait_until(lambda: recorder.named(f"{TOPIC} publish"), 10, message="the publish span to end")
    finally:
        relay.stop()

    (span,) = recorder.finished()  # the untraced row has no span
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"  # a child of the stored context
    assert span.kind.name == "PRODUCER"
    assert span.attributes["messaging.system"] == "kafka"
    assert span.attributes["messaging.destination.name"] == TOPIC
    assert span.attributes["messaging.kafka.message.key"] == "traced"
    assert span.attributes["messaging.kafka.offset"] == records["traced"].offset()
    headers = dict(records["traced"].headers() or [])
    assert headers == {
        "traceparent": f"00-{TRACE_ID}-{span.context.span_id:016x}-01".encode(),
        "tracestate": b"vendor=x",
    }
    assert records["untraced"].headers() is None
