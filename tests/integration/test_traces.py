"""One trace covers an order from its request to Fulfilled, across both service processes: the Order Service's
request and publish spans, the Fulfillment Service's processing, provider call and publish spans, and the Order
Service's projection, each the child of the one before, exported over OTLP/HTTP to a receiver the test runs. The
W3C traceparent travels on the records of both topics, also when no exporter is configured."""

from __future__ import annotations

import secrets

import httpx
import pytest
from confluent_kafka import Message

from harness.order_bodies import order_body
from harness.orders import wait_terminal
from harness.otlp_receiver import OtlpReceiver, ReceivedSpan
from harness.system import System, running_system
from harness.topics import read_topic

pytestmark = pytest.mark.integration


def place_traced_order(system: System) -> tuple[str, str, str]:
    """POST an order as a caller in a trace of its own; (order id, trace id, the caller's span id) once the
    order is Fulfilled."""
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    with httpx.Client(base_url=system.orders.url, timeout=30) as client:
        created = client.post(
            "/api/orders", json=order_body(), headers={"traceparent": f"00-{trace_id}-{caller_span}-01"}
        )
        assert created.status_code == 201, created.text
        order_id = created.json()["orderId"]
        assert wait_terminal(client, order_id, timeout=60) == "Fulfilled"
    return order_id, trace_id, caller_span


def records_of(system: System, topic: str, order_id: str, at_least: int = 1) -> list[Message]:
    key = order_id.encode()
    found = read_topic(
        system.bootstrap_servers, topic, stop=lambda rs: sum(r.key() == key for r in rs) >= at_least, timeout=30
    )
    return [record for record in found if record.key() == key]


def traceparent_of(record: Message) -> tuple[str, str]:
    """(trace id, parent span id) of the record's traceparent header."""
    headers = dict(record.headers() or [])
    assert "traceparent" in headers, f"no traceparent on {record.topic()}@{record.offset()}: {headers}"
    version, trace_id, span_id, flags = headers["traceparent"].decode().split("-")
    assert (version, flags) == ("00", "01")
    return trace_id, span_id


def test_one_trace_covers_an_order_from_request_to_fulfilled_across_both_services(stack, tmp_path):
    with OtlpReceiver() as receiver:
        exporting = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.traces_url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: export within a moment rather than every 5 s
            "PROVIDER_FAILURE_RATE": "0",  # one provider call, in the record's processing
        }
        with running_system(stack, tmp_path, **exporting) as system:
            order_id, trace_id, caller_span = place_traced_order(system)
            status_records = records_of(system, system.fulfillment_topic, order_id, at_least=2)
            published = len(status_records)  # picked up, Shipped

            def whole_trace(spans: list[ReceivedSpan]) -> dict[tuple[str, str, str], list[ReceivedSpan]]:
                ours: dict[tuple[str, str, str], list[ReceivedSpan]] = {}
                for span in spans:
                    if span.trace_id == trace_id:
                        ours.setdefault((span.service, span.kind, span.name), []).append(span)
                projected = ours.get(("order-service", "CONSUMER", f"{system.fulfillment_topic} process"), [])
                return ours if len(projected) >= published else {}

            spans = receiver.wait_for(whole_trace, timeout=30)
            order_record = records_of(system, system.order_topic, order_id)[0]

    (request,) = spans[("order-service", "SERVER", "POST /api/orders")]
    (order_publish,) = spans[("order-service", "PRODUCER", f"{system.order_topic} publish")]
    (processing,) = spans[("fulfillment-service", "CONSUMER", f"{system.order_topic} process")]
    (provider_call,) = spans[("fulfillment-service", "CLIENT", "shipping-provider create_shipment")]
    status_publishes = spans[("fulfillment-service", "PRODUCER", f"{system.fulfillment_topic} publish")]
    projections = spans[("order-service", "CONSUMER", f"{system.fulfillment_topic} process")]

    assert request.parent_span_id == caller_span  # the caller's traceparent was continued
    assert request.attributes["http.response.status_code"] == 201
    assert order_publish.parent_span_id == request.span_id
    assert processing.parent_span_id == order_publish.span_id
    assert processing.attributes["messaging.kafka.message.key"] == order_id
    assert processing.attributes["messaging.consumer.group.name"].endswith("fulfillment-service")
    assert provider_call.parent_span_id == processing.span_id and not provider_call.error
    assert len(status_publishes) == published
    assert {span.parent_span_id for span in status_publishes} == {processing.span_id}
    assert len(projections) == published
    assert {span.parent_span_id for span in projections} == {span.span_id for span in status_publishes}

    # The records carry the publishing spans' context.
    assert traceparent_of(order_record) == (trace_id, order_publish.span_id)
    assert {traceparent_of(record) for record in status_records} == {
        (trace_id, span.span_id) for span in status_publishes
    }


def test_the_trace_context_travels_on_both_topics_without_an_exporter(system):
    order_id, trace_id, _caller_span = place_traced_order(system)
    (order_record,) = records_of(system, system.order_topic, order_id)
    status_records = records_of(system, system.fulfillment_topic, order_id, at_least=2)
    assert traceparent_of(order_record)[0] == trace_id
    assert {traceparent_of(record)[0] for record in status_records} == {trace_id}
    # Each hop is a span of its own: the fulfillment records name spans other than the order record's.
    assert traceparent_of(order_record)[1] not in {traceparent_of(record)[1] for record in status_records}
