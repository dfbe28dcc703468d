"""The consumer's part of a trace: a span per record processed, continuing the trace its headers carry.

Each record's work runs in a span `<topic> process` (kind CONSUMER), a child of the W3C trace context in the
record's `traceparent`/`tracestate` headers (observability.trace_context), or the root of a new trace when it has
none. Attributes follow the OpenTelemetry messaging semantic conventions: messaging.system `kafka`,
messaging.operation.type `process`, messaging.destination.name, messaging.destination.partition.id,
messaging.kafka.offset, messaging.consumer.group.name and messaging.kafka.message.key (the order id). The
dispatchers (messaging.consumer.dispatch) start and end them. A batch handler, which handles many records at once
outside their spans, finds the span of each of its events in `batch_spans()` (the same order), to log what it did
for a record in that record's trace (observability.trace_context.within).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

from confluent_kafka import Message
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer

from observability.trace_context import from_headers

_BATCH_SPANS: ContextVar[Sequence[Span]] = ContextVar("batch_spans", default=())


def batch_spans() -> Sequence[Span]:
    """The processing spans of the batch the current handler call handles, one per event in the order of its
    events; empty without spans (or outside a batch handler)."""
    return _BATCH_SPANS.get()


def set_batch_spans(spans: Sequence[Span]) -> object:
    """Make spans what batch_spans() returns in this context (and in threads started from it with a copy of it,
    as asyncio.to_thread does); returns the token for reset_batch_spans."""
    return _BATCH_SPANS.set(spans)


def reset_batch_spans(token: object) -> None:
    """Undo the set_batch_spans that returned token."""
    _BATCH_SPANS.reset(token)  # type: ignore[arg-type]


class ConsumerSpans:
    """Makes the processing spans of the records of consumer group with tracer (default: the global provider's
    tracer for this module)."""

    def __init__(self, group: str, tracer: Tracer | None = None) -> None:
        self._group = group
        self._tracer = tracer or trace.get_tracer(__name__)

    def start(self, message: Message, start_time: int | None = None) -> Span:
        """The span of message's processing, started at start_time (ns since the epoch; default: now), not yet
        current: use it with `trace.use_span(span, end_on_exit=True)`, or end it yourself."""
        topic = message.topic() or ""
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": str(message.partition()),
            "messaging.consumer.group.name": self._group,
        }
        offset = message.offset()
        if offset is not None:
            attributes["messaging.kafka.offset"] = offset
        key = message.key()
        if key is not None:
            text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            attributes["messaging.kafka.message.key"] = text
        return self._tracer.start_span(
            f"{topic} process",
            context=from_headers(message.headers()) or Context(),  # no headers: a new trace
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=start_time,
        )
