"""W3C Trace Context (https://www.w3.org/TR/trace-context/) carried where the services hand work on: stored with
an outbox row, sent as Kafka record headers, read back from them.

Only the two W3C fields travel, `traceparent` (version, trace id, parent span id, flags) and `tracestate`
(vendor data), injected and extracted by PROPAGATOR (OpenTelemetry's TraceContextTextMapPropagator within the
bounds below), whatever OTEL_PROPAGATORS says: the contract between the services is W3C Trace Context, not a
configurable set. No baggage is read or sent (the services use none). The HTTP edge extracts with the global
propagator, which observability.tracing sets to PROPAGATOR unless OTEL_PROPAGATORS names others.

What a client sends is carried on every record and stored with every outbox row and fulfillment, so both fields
are bounded wherever a context is read or written:

* `traceparent` has W3C's fixed form, 55 characters (`00-<32 hex>-<16 hex>-<2 hex>`); a longer value of a later
  version is read as its first 55 characters followed by `-` (W3C Trace Context §3.2.4, "Versioning of
  traceparent"), any other longer value is no trace context (a new trace starts), without being parsed or logged;
* `tracestate` keeps at most MAX_TRACESTATE_MEMBERS (32) list members and MAX_TRACESTATE_CHARS (512) characters,
  the limits of W3C Trace Context §3.3.1.5 ("Tracestate Limits"): over 512, members longer than 128 characters go
  first, then members from the end, whole members only.

* stored form (the outbox's `trace_context` column): the carrier as compact JSON,
  `{"traceparent":"00-<32 hex>-<16 hex>-01"}` plus `"tracestate"` when there is one; None without a valid span.
* Kafka headers: [("traceparent", b"00-..."), ("tracestate", b"...")], UTF-8 values, the W3C names as they are
  sent over HTTP (Kafka header names are case-sensitive; these are lower case).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, default_getter, default_setter
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
FIELDS = (TRACEPARENT, TRACESTATE)
TRACEPARENT_CHARS = 55
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_CHARS = 512
LONG_TRACESTATE_MEMBER = 128

Headers = Sequence[tuple[str, bytes | str | None]]


def bounded_traceparent(value: str) -> str | None:
    """value within traceparent's fixed form (see the module docstring); None when it cannot be one."""
    value = value.strip(" \t")
    if len(value) <= TRACEPARENT_CHARS:
        return value
    if value[:2] != "00" and value[TRACEPARENT_CHARS] == "-":
        return value[:TRACEPARENT_CHARS]
    return None


def bounded_tracestate(values: Iterable[str]) -> str:
    """One tracestate value of the list members of values (one or more header values), at most
    MAX_TRACESTATE_MEMBERS members and MAX_TRACESTATE_CHARS characters (see the module docstring)."""
    stripped = (member.strip(" \t") for value in values for member in value.split(","))
    members = list(islice(filter(None, stripped), MAX_TRACESTATE_MEMBERS))
    if _joined_length(members) > MAX_TRACESTATE_CHARS:
        members = [member for member in members if len(member) <= LONG_TRACESTATE_MEMBER]
        while _joined_length(members) > MAX_TRACESTATE_CHARS:
            members.pop()
    return ",".join(members)


def _joined_length(members: list[str]) -> int:
    return sum(map(len, members)) + max(0, len(members) - 1)


class _BoundedGetter(Getter[Any]):
    """Reads the W3C fields through getter, bounded."""

    def __init__(self, getter: Getter[Any]) -> None:
        self._getter = getter

    def get(self, carrier: Any, key: str) -> list[str] | None:
        values = self._getter.get(carrier, key)
        if not values:
            return values
        if key == TRACEPARENT:
            first = bounded_traceparent(values[0])
            return [first] if first is not None else None
        if key == TRACESTATE:
            return [bounded_tracestate(values)]
        return values

    def keys(self, carrier: Any) -> list[str]:
        return self._getter.keys(carrier)


class BoundedTraceContextPropagator(TraceContextTextMapPropagator):
    """W3C Trace Context (OpenTelemetry's propagator) that reads and writes `traceparent` and `tracestate` only
    within their bounds (see the module docstring)."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        """The context carrier's bounded W3C fields continue (context, or a new one, when they name none)."""
        return super().extract(carrier, context, _BoundedGetter(getter))

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        """Set context's W3C fields (default: the current context's) in carrier, tracestate bounded."""
        fields: dict[str, str] = {}
        super().inject(fields, context)
        for name, value in fields.items():
            bounded = bounded_tracestate([value]) if name == TRACESTATE else value
            if bounded:
                setter.set(carrier, name, bounded)


PROPAGATOR = BoundedTraceContextPropagator()


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


@contextmanager
def within(span: Span | None) -> Iterator[None]:
    """Make span current inside the block without ending it (nothing for None), so lines logged there carry its
    trace and span ids: for work about a span that runs where it is not current, such as a delivery callback."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield
