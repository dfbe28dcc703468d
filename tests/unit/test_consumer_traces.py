"""A consumed record is processed in a CONSUMER span continuing the trace its headers carry: one at a time in the
key-ordered dispatcher (current while the handler runs, so what the handler writes continues it), one per record
of a batch in the batch dispatcher. Dead-letter copies keep the original's trace headers."""

from __future__ import annotations

import asyncio
import json

from confluent_kafka import Message

from events.topology import DEAD_LETTER_HEADERS
from messaging.consumer.decode import Decoded
from messaging.consumer.dispatch import BatchDispatcher, KeyOrderedDispatcher
from messaging.consumer.tracing import ConsumerSpans
from messaging.dead_letter import PRODUCER_MAX_MESSAGE_BYTES
from messaging.dead_letter_copy import dead_letter_copy
from observability.trace_context import capture
from tests.unit.span_recorder import SpanRecorder

TRACE_IDS = ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"]
PARENT = "00f067aa0ba902b7"


def record(offset: int, key: str, trace_id: str | None) -> Decoded:
    headers = [("traceparent", f"00-{trace_id}-{PARENT}-01".encode())] if trace_id else None
    message = Message(topic="order-events", partition=1, offset=offset, key=key.encode(), value=b"v", headers=headers)
    return Decoded(message, key)


def trace_id_of(span) -> str:
    return f"{span.context.trace_id:032x}"


def test_each_record_is_handled_in_a_consumer_span_of_its_own_trace():
    recorder = SpanRecorder()
    written: dict[str, str | None] = {}
    attempts: list[str] = []

    async def handle(key: str) -> None:
        attempts.append(key)
        if key == "flaky" and attempts.count(key) == 1:
            raise RuntimeError("database away")
        written[key] = capture()  # as the unit of work's outbox entry does

    async def scenario() -> None:
        dispatcher = KeyOrderedDispatcher(handle, key_of=str, spans=ConsumerSpans("fulfillment", recorder.tracer))
        finished: list[int] = []
        dispatcher.dispatch(
            [record(5, "a", TRACE_IDS[0]), record(6, "flaky", TRACE_IDS[1]), record(7, "b", None)],
            lambda message: finished.append(message.offset()),
        )
        await asyncio.wait(dispatcher.running(), timeout=10)
        assert len(finished) == 3

    asyncio.run(scenario())

    spans = {span.attributes["messaging.kafka.message.key"]: span for span in recorder.named("order-events process")}
    assert set(spans) == {"a", "flaky", "b"}
    a, flaky, untraced = spans["a"], spans["flaky"], spans["b"]
    assert (trace_id_of(a), f"{a.parent.span_id:016x}") == (TRACE_IDS[0], PARENT)
    assert trace_id_of(flaky) == TRACE_IDS[1]
    assert untraced.parent is None and trace_id_of(untraced) not in TRACE_IDS  # a new trace
    assert a.kind.name == "CONSUMER"
    assert {k: a.attributes[k] for k in ("messaging.system", "messaging.destination.name",
            "messaging.destination.partition.id", "messaging.kafka.offset", "messaging.consumer.group.name")} == {
        "messaging.system": "kafka", "messaging.destination.name": "order-events",
        "messaging.destination.partition.id": "1", "messaging.kafka.offset": 5,
        "messaging.consumer.group.name": "fulfillment"}  # fmt: skip
    assert [event.name for event in flaky.events] == ["exception"]  # the failed attempt, then success
    for key, span in spans.items():  # what the handler wrote continues the record's span
        assert json.loads(written[key] or "{}")["traceparent"].split("-")[1:3] == [
            trace_id_of(span),
            f"{span.context.span_id:016x}",
        ]


def test_every_record_of_a_batch_gets_its_own_span_over_the_batchs_work():
    recorder = SpanRecorder()
    batches: list[list[str]] = []

    async def scenario() -> None:
        dispatcher = BatchDispatcher(batches.append, spans=ConsumerSpans("order-service", recorder.tracer))
        finished: list[int] = []
        dispatcher.dispatch(
            [record(1, "x", TRACE_IDS[0]), record(2, "y", TRACE_IDS[1])],
            lambda message: finished.append(message.offset()),
        )
        await asyncio.wait(dispatcher.running(), timeout=10)
        assert len(finished) == 2

    asyncio.run(scenario())

    assert batches == [["x", "y"]]
    x, y = recorder.named("order-events process")
    assert [trace_id_of(x), trace_id_of(y)] == TRACE_IDS
    assert (x.start_time, x.end_time) == (y.start_time, y.end_time)  # both span the one transaction
    assert x.attributes["messaging.batch.message_count"] == 2
    assert x.attributes["messaging.consumer.group.name"] == "order-service"


def test_a_dead_letter_copy_keeps_the_originals_headers_before_its_own():
    original = Message(
        topic="order-events",
        partition=0,
        offset=3,
        key=b"k",
        value=b"\x01poison",
        headers=[("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("empty", None),
                 (DEAD_LETTER_HEADERS.error_type, b"forged")],
        timestamp=(1, 1_700),
    )  # fmt: skip
    copy = dead_letter_copy(DEAD_LETTER_HEADERS, original, "InvalidWireFormat", "bad", PRODUCER_MAX_MESSAGE_BYTES)
    assert copy.headers[:2] == [
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("empty", b""),
    ]
    assert [value for name, value in copy.headers if name == DEAD_LETTER_HEADERS.error_type] == [b"InvalidWireFormat"]
