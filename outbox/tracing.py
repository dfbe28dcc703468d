"""The relay's part of a trace: a PRODUCER span per outbox row published, and the record headers that carry it.

A row written in a trace (its `trace_context`, observability.trace_context's stored form) is published in a span
`<topic> publish` (kind PRODUCER), a child of the stored context, from the produce call to the broker's
acknowledgement; the record's `traceparent`/`tracestate` headers name that span, so the consumer's processing
span is its child (the OpenTelemetry messaging semantic conventions' "creation context"). Attributes follow those
conventions: messaging.system `kafka`, messaging.operation.type `send`, messaging.destination.name, the
record's key, and once acknowledged its partition and offset; a refused record marks the span as an error.

A row without a trace context (written before the column existed, or outside any trace) is published without
headers and without a span.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, Message
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from observability.trace_context import kafka_headers, restore
from outbox.claims import ClaimedRow


class PublishSpans:
    """Makes the publish spans of the relay's rows with tracer (default: the global provider's tracer for this
    module)."""

    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer or trace.get_tracer(__name__)

    def start(self, row: ClaimedRow) -> tuple[Span | None, list[tuple[str, bytes]] | None]:
        """The span publishing row (started now) and the headers its record carries; (None, None) for a row
        without a trace context (or with one that does not parse)."""
        parent = restore(row.trace_context)
        if parent is None:
            return None, None
        span = self._tracer.start_span(
            f"{row.topic} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": row.topic,
                "messaging.kafka.message.key": row.key,
            },
        )
        return span, kafka_headers(trace.set_span_in_context(span, parent))

    @staticmethod
    def delivered(span: Span, err: KafkaError | None, message: Message | None) -> None:
        """End span with the broker's answer: the record's partition and offset, or the error."""
        if err is None and message is not None:
            span.set_attribute("messaging.destination.partition.id", str(message.partition()))
            offset = message.offset()
            if offset is not None:
                span.set_attribute("messaging.kafka.offset", offset)
        elif err is not None:
            span.set_status(Status(StatusCode.ERROR, err.str()))
        span.end()

    @staticmethod
    def failed(span: Span, exc: BaseException) -> None:
        """End span for a record that could not be handed to the producer."""
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()
