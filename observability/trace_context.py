"""W3C Trace Context (https://www.w3.org/TR/trace-context/) carried where the services hand work on: stored with
an outbox row, sent as Kafka record headers, read back from them.

Only the two W3C fields travel, `traceparent` (version, trace id, parent span id, flags) and `tracestate`
(vendor data), injected and extracted by OpenTelemetry's TraceContextTextMapPropagator, whatever
OTEL_PROPAGATORS says: the contract between the services is W3C Trace Context, not a configurable set.

* stored form (the outbox's `trace_context` column): the carrier as compact JSON,
  `{"traceparent":"00-<32 hex>-<16 hex>-01"}` plus `"tracestate"` when there is one; None without a valid span.
* Kafka headers: [("traceparent", b"00-..."), ("tracestate", b"...")], UTF-8 values, the W3C names as they are
  sent over HTTP (Kafka header names are case-sensitive; these are lower case).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
FIELDS = (TRACEPARENT, TRACESTATE)
PROPAGATOR = TraceContextTextMapPropagator()

Headers = Sequence[tuple[str, bytes | str | None]]


def carrier(context: Context | None = None) -> dict[str, str]:
    """The W3C fields of context's span (default: the current context) as {"traceparent": ..., ["tracestate": ...]};
    {} when it has no valid span."""
    fields: dict[str, str] = {}
    if trace.get_current_span(context).get_span_context().is_valid:
        PROPAGATOR.inject(fields, context)
    return fields


def capture(context: Context | None = None) -> str | None:
    """The stored form of context's trace context (default: the current one): compact JSON, or None when
    there is no valid span to continue."""
    fields = carrier(context)
    return json.dumps(fields, separators=(",", ":")) if fields else None


def restore(stored: str | None) -> Context | None:
    """The context a stored form (capture's) continues: its span is the remote parent. None for None, for text
    that is not a JSON object, and for a traceparent the W3C format refuses (a new trace is started instead)."""
    if not stored:
        return None
    try:
        fields = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    context = PROPAGATOR.extract(
        {k: v for k, v in fields.items() if k in FIELDS and isinstance(v, str)}, context=Context()
    )
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def kafka_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The Kafka record headers that carry context's trace context (default: the current one); [] without one."""
    return [(name, value.encode()) for name, value in carrier(context).items()]


class _HeaderGetter(Getter[Headers]):
    """Reads W3C fields from Kafka headers (a list of (name, value) pairs, values bytes or text)."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [_text(value) for name, value in carrier if name == key and value is not None]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _value in carrier]


_GETTER = _HeaderGetter()


def from_headers(headers: Iterable[tuple[str, bytes | str | None]] | None) -> Context | None:
    """The context headers continue: (name, value) pairs such as a Kafka record's (confluent_kafka's
    Message.headers(), a list or None) or an HTTP request's (lower-case names); None when they carry no valid
    traceparent (then the work they came with starts a new trace)."""
    if not headers:
        return None
    fields = [(name, value) for name, value in headers if name in FIELDS]
    if not fields:
        return None
    context = PROPAGATOR.extract(fields, context=Context(), getter=_GETTER)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
