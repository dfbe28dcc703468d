"""Tracing is always on and exports only when told: the W3C trace context survives the outbox's stored form and
Kafka headers, every HTTP request gets a server span continuing its caller's traceparent, and spans reach an
OTLP/HTTP receiver exactly when the OTEL_* variables name one."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from harness.otlp_receiver import OtlpReceiver
from httpapi.app import contract_app
from observability.trace_context import capture, carrier, from_headers, kafka_headers, restore
from observability.tracing import exporter_names, span_exporters, tracer_provider
from tests.unit.span_recorder import SpanRecorder

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def ids(span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def traceparent(span) -> str:
    """The W3C traceparent naming span (its flags as the SDK set them: sampled, and random for a new trace id)."""
    context = span.get_span_context()
    assert context.trace_flags.sampled
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


# -- the W3C trace context ----------------------------------------------------------------------------------


def test_the_stored_form_round_trips_traceparent_and_tracestate():
    incoming = from_headers([("traceparent", TRACEPARENT.encode()), ("tracestate", b"vendor=abc")])
    stored = capture(incoming)
    assert json.loads(stored) == {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
    restored = restore(stored)
    context = trace.get_current_span(restored).get_span_context()
    assert (f"{context.trace_id:032x}", f"{context.span_id:016x}") == (TRACE_ID, PARENT_ID)
    assert context.trace_state.get("vendor") == "abc"
    assert kafka_headers(restored) == [("traceparent", TRACEPARENT.encode()), ("tracestate", b"vendor=abc")]


def test_the_current_span_is_captured_and_nothing_without_one():
    recorder = SpanRecorder()
    assert capture() is None and kafka_headers() == [] and carrier() == {}
    with recorder.tracer.start_as_current_span("work") as span:
        stored = capture()
    assert json.loads(stored) == {"traceparent": traceparent(span)}


@pytest.mark.parametrize(
    "stored",
    [None, "", "not json", "[1]", '{"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}',
     '{"traceparent": "garbage"}', '{"tracestate": "a=b"}'],
)  # fmt: skip
def test_a_stored_form_without_a_valid_traceparent_continues_nothing(stored):
    recorder = SpanRecorder()
    with recorder.tracer.start_as_current_span("unrelated"):  # never mistaken for the stored context
        assert restore(stored) is None


def test_headers_without_a_valid_traceparent_continue_nothing():
    assert from_headers(None) is None
    assert from_headers([]) is None
    assert from_headers([("other", b"x"), ("traceparent", None)]) is None
    assert from_headers([("traceparent", b"00-xyz")]) is None
    assert from_headers([("Traceparent", TRACEPARENT.encode())]) is None  # Kafka header names are exact


# -- where spans go ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": " OTLP , console,otlp"}, ["otlp", "console"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
    ],
)
def test_spans_are_exported_only_where_the_environment_says(environ, names):
    assert exporter_names(environ) == names


def test_an_unknown_exporter_is_skipped():
    assert span_exporters({"OTEL_TRACES_EXPORTER": "zipkin-someday"}) == []


def test_without_an_exporter_spans_have_real_ids_and_record_nothing(monkeypatch):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    tracer = tracer_provider("order-service").get_tracer("t")
    with tracer.start_as_current_span("request", attributes={"a": 1}) as root:
        assert not root.is_recording()
        assert root.get_span_context().is_valid and root.get_span_context().trace_flags.sampled
        assert json.loads(capture()) == {"traceparent": traceparent(root)}
        with tracer.start_as_current_span("child") as child:
            assert ids(child)[0] == ids(root)[0] and ids(child)[1] != ids(root)[1]
    incoming = from_headers([("traceparent", TRACEPARENT), ("tracestate", "v=1")])
    continued = tracer.start_span("record", context=incoming)
    assert ids(continued)[0] == TRACE_ID and ids(continued)[1] != PARENT_ID
    assert kafka_headers(trace.set_span_in_context(continued))[1] == ("tracestate", b"v=1")
    unsampled = from_headers([("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00")])
    assert not tracer.start_span("record", context=unsampled).get_span_context().trace_flags.sampled  # parent-based


def test_with_otlp_configured_spans_reach_the_receiver_with_the_service_name(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.traces_url)
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)  # the endpoint alone turns OTLP on
        provider = tracer_provider("fulfillment-service")
        with provider.get_tracer("t").start_as_current_span("work", kind=SpanKind.CONSUMER) as span:
            trace_id, span_id = ids(span)
        assert provider.force_flush(10)
        (received,) = receiver.wait_for(lambda spans: spans, 10)
        provider.shutdown()
    assert (received.trace_id, received.span_id, received.parent_span_id) == (trace_id, span_id, None)
    assert (received.name, received.kind, received.service) == ("work", "CONSUMER", "fulfillment-service")


def test_sdk_disabled_makes_no_spans_but_passes_an_incoming_context_on(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracer = tracer_provider("order-service").get_tracer("t")
    with tracer.start_as_current_span("request") as span:
        assert not span.get_span_context().is_valid  # no new trace
    with tracer.start_as_current_span("request", context=from_headers([("traceparent", TRACEPARENT)])):
        assert json.loads(capture()) == {"traceparent": TRACEPARENT}


# -- HTTP ------------------------------------------------------------------------------------------------


def traced_app(recorder: SpanRecorder) -> FastAPI:
    """The app both services start from, with a route that answers with what an outbox row written there
    would store, and one that fails."""
    app = contract_app("Order Service", "order-service", None, max_body_bytes=1000, tracer_provider=recorder.provider)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict:
        return {"item": item_id, "context": capture()}

    @app.get("/broken")
    async def broken() -> dict:
        raise RuntimeError("boom")

    return app


def get(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(request())


def test_a_request_continues_its_callers_traceparent_in_a_span_named_by_its_route():
    recorder = SpanRecorder()
    response = get(traced_app(recorder), "/items/42", {"traceparent": TRACEPARENT, "tracestate": "v=1"})
    (span,) = recorder.finished()  # one span per request: none per dependency, endpoint or serialisation
    assert span.name == "GET /items/{item_id}" and span.kind is SpanKind.SERVER
    assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE_ID, PARENT_ID)
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/items/42"
    stored = json.loads(response.json()["context"])  # the handler ran in the request's span
    assert stored == {"traceparent": traceparent(span), "tracestate": "v=1"}


def test_a_request_without_a_valid_traceparent_starts_a_new_trace():
    recorder = SpanRecorder()
    app = traced_app(recorder)
    get(app, "/items/1")
    get(app, "/items/2", {"traceparent": "00-not-a-trace"})
    get(app, "/nowhere")
    first, second, unmatched = recorder.finished()
    assert first.parent is None and second.parent is None
    assert first.context.trace_id != second.context.trace_id
    assert unmatched.name == "GET" and "http.route" not in unmatched.attributes  # no route: the method alone
    assert unmatched.attributes["http.response.status_code"] == 404


def test_a_failing_request_marks_its_span_as_an_error():
    recorder = SpanRecorder()
    response = get(traced_app(recorder), "/broken")
    assert response.status_code == 500
    (span,) = recorder.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
