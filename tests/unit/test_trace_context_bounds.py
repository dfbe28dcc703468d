"""A client's trace context is carried within W3C Trace Context's bounds: traceparent in its fixed form, tracestate
at most 32 members and 512 characters wherever it is stored or sent on; and the HTTP edge reads no baggage unless
OTEL_PROPAGATORS asks for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import baggage, propagate, trace

from httpapi.app import contract_app
from observability.trace_context import (
    MAX_TRACESTATE_CHARS,
    bounded_tracestate,
    capture,
    from_headers,
    kafka_headers,
    restore,
)
from observability.tracing import http_propagator
from tests.unit.log_capture import json_lines
from tests.unit.span_recorder import SpanRecorder

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
# About 7.5 KB of valid members, as a client may send: 75 members of 100 characters.
LARGE_TRACESTATE = ",".join(f"v{i:02d}=" + "x" * 96 for i in range(75))
OTEL_LOGGERS = ("opentelemetry.baggage.propagation", "opentelemetry.trace.span", "opentelemetry.trace.propagation")


def _trace_id(context) -> str:
    return f"{trace.get_current_span(context).get_span_context().trace_id:032x}"


def test_a_long_tracestate_keeps_whole_members_within_512_characters() -> None:
    short = [f"k{i}=v{i}" for i in range(40)]
    assert bounded_tracestate([",".join(short)]) == ",".join(short[:32])  # at most 32 members
    members = ["first=1", "long=" + "y" * 200, *(f"m{i:02d}=" + "z" * 60 for i in range(20))]
    bounded = bounded_tracestate([", ".join(members)])
    kept = bounded.split(",")
    assert len(bounded) <= MAX_TRACESTATE_CHARS
    assert kept[0] == "first=1" and "long=" + "y" * 200 not in kept  # over 128 characters: dropped first
    assert kept == [members[0], *members[2 : len(kept) + 1]]  # then whole members from the end


def test_a_large_tracestate_is_stored_and_sent_on_within_the_bound() -> None:
    incoming = from_headers([("traceparent", TRACEPARENT.encode()), ("tracestate", LARGE_TRACESTATE.encode())])
    assert incoming is not None and _trace_id(incoming) == TRACE_ID
    stored = json.loads(capture(incoming))
    assert stored["traceparent"] == TRACEPARENT
    assert 0 < len(stored["tracestate"]) <= MAX_TRACESTATE_CHARS
    assert stored["tracestate"].split(",") == LARGE_TRACESTATE.split(",")[:5]  # whole members, the first ones
    headers = dict(kafka_headers(incoming))
    assert len(headers["tracestate"]) <= MAX_TRACESTATE_CHARS
    # A stored form written before the bound (or by hand) is bounded when read back and sent on.
    old = json.dumps({"traceparent": TRACEPARENT, "tracestate": LARGE_TRACESTATE})
    assert len(dict(kafka_headers(restore(old)))["tracestate"]) <= MAX_TRACESTATE_CHARS


@pytest.mark.parametrize(
    ("value", "continued"),
    [
        (TRACEPARENT, True),
        ("  " + TRACEPARENT, True),
        (TRACEPARENT + "-" + "a" * 10_000, False),  # version 00 has exactly four fields
        (TRACEPARENT + "a" * 400, False),
        ("01" + TRACEPARENT[2:] + "-future-fields", True),  # a later version: its first 55 characters
        ("01" + TRACEPARENT[2:] + "a" * 400, False),
    ],
)
def test_a_traceparent_is_read_only_in_its_fixed_form(value: str, continued: bool) -> None:
    with json_lines(*OTEL_LOGGERS) as lines:
        context = from_headers([("traceparent", value.encode())])
    assert (context is not None) is continued
    if continued:
        stored = json.loads(capture(context))
        assert len(stored["traceparent"]) == 55 and _trace_id(context) == TRACE_ID
    assert lines.all() == []  # refused without a word


@pytest.fixture
def global_propagator() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


def _edge_app(recorder: SpanRecorder) -> FastAPI:
    app = contract_app("Order Service", "order-service", None, max_body_bytes=1000, tracer_provider=recorder.provider)

    @app.get("/context")
    async def context() -> dict:
        return {"context": capture(), "baggage": dict(baggage.get_all())}

    return app


def _get(app: FastAPI, headers: dict[str, str]) -> httpx.Response:
    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/context", headers=headers)

    return asyncio.run(request())


def test_the_http_edge_reads_trace_context_only_and_bounded(global_propagator: None) -> None:
    propagate.set_global_textmap(http_propagator({}))
    headers = {
        "traceparent": TRACEPARENT,
        "tracestate": LARGE_TRACESTATE,
        "baggage": "k=" + "%FF" * 2_000 + "," + ",".join(["x"] * 2_000),
    }
    with json_lines(*OTEL_LOGGERS) as lines:
        body = _get(_edge_app(SpanRecorder()), headers).json()
    assert lines.all() == []  # the baggage is never parsed
    assert body["baggage"] == {}
    stored = json.loads(body["context"])
    assert stored["traceparent"].split("-")[1] == TRACE_ID
    assert len(stored["tracestate"]) <= MAX_TRACESTATE_CHARS


def test_otel_propagators_can_ask_for_baggage(global_propagator: None) -> None:
    propagate.set_global_textmap(http_propagator({"OTEL_PROPAGATORS": "tracecontext,baggage"}))
    body = _get(_edge_app(SpanRecorder()), {"traceparent": TRACEPARENT, "baggage": "tenant=acme"}).json()
    assert body["baggage"] == {"tenant": "acme"}
    assert json.loads(body["context"])["traceparent"].split("-")[1] == TRACE_ID
    propagate.set_global_textmap(http_propagator({"OTEL_PROPAGATORS": "none"}))
    body = _get(_edge_app(SpanRecorder()), {"traceparent": TRACEPARENT}).json()
    assert json.loads(body["context"])["traceparent"].split("-")[1] != TRACE_ID  # nothing read: a new trace
