"""End to end on the real broker and registry: POST an order, watch it ship."""

from __future__ import annotations

import json
import struct
import uuid
from decimal import Decimal

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from contract_models.events import ORDER_CREATED_SCHEMA, OrderCreated
from events.topology import ORDER_EVENTS
from harness.order_bodies import order_body
from harness.orders import TERMINAL
from harness.system import running_system
from harness.topics import read_topic
from messaging.avro_codec import EventCodec

pytestmark = pytest.mark.integration


@pytest.fixture
def default_system(stack, tmp_path):
    # The standard topic names and groups; the stack is this test session's own.
    # Slow provider calls so the Processing state is observable before the outcome.
    with running_system(
        stack, tmp_path, prefix="", PROVIDER_MIN_LATENCY_MS="1500", PROVIDER_MAX_LATENCY_MS="2000"
    ) as running:
        yield running


def test_order_is_published_picked_up_and_fulfilled(default_system):
    system = default_system
    assert system.order_topic == "order-events"
    with httpx.Client(base_url=system.orders.url, timeout=30) as client:
        created = client.post("/api/orders", json=order_body(items=2))
        assert created.status_code == 201
        order = created.json()
        order_id = order["orderId"]
        assert str(uuid.UUID(order_id)) == order_id
        assert order["status"] == "Pending"
        assert Decimal(str(order["totalAmount"])) == Decimal("59.97")  # 1 x 19.99 + 2 x 19.99

        # The event: Confluent wire format (magic 0 + schema id), decodable to this order.
        records = read_topic(
            system.bootstrap_servers,
            "order-events",
            stop=lambda rs: any(r.key() == order_id.encode() for r in rs),
            timeout=30,
        )
        record = next(r for r in records if r.key() == order_id.encode())
        magic, schema_id = struct.unpack(">bI", record.value()[:5])
        assert magic == 0
        registry = SchemaRegistryClient({"url": system.registry_url})
        subject = ORDER_EVENTS.subject("order-events")  # order-events-orderprocessing.events.OrderCreated
        assert subject in registry.get_subjects()
        registered = registry.get_latest_version(subject)
        assert registered.schema_id == schema_id
        assert json.loads(registered.schema.schema_str)["name"] == "OrderCreated"
        assert registry.get_compatibility(subject) == "FULL_TRANSITIVE"
        event = EventCodec(registry, "order-events", ORDER_CREATED_SCHEMA, OrderCreated).decode(record.value())
        assert str(event.orderId) == order_id
        assert event.totalAmount == Decimal("59.97")
        assert [i.quantity for i in event.items] == [1, 2]

        # Picked up: Processing while the provider call runs, then a terminal status.
        processing = client.get(
            f"/api/orders/{order_id}", params={"waitFor": "Processing,Fulfilled,Failed", "timeout": 20}
        ).json()
        assert processing["status"] == "Processing"
        final = client.get(f"/api/orders/{order_id}", params={"waitFor": "Fulfilled,Failed", "timeout": 25}).json()
        assert final["status"] in TERMINAL

    with httpx.Client(base_url=system.fulfillment.url, timeout=10) as client:
        fulfillment = client.get(f"/api/fulfillment/orders/{order_id}").json()
    if final["status"] == "Fulfilled":
        assert final["trackingNumber"].startswith("SHIP-")
        assert final["carrier"] == "MockCarrier" and final["estimatedDelivery"]
        assert fulfillment["status"] == "Shipped"
        assert fulfillment["trackingNumber"] == final["trackingNumber"]
    else:
        assert fulfillment["status"] == "Failed" and final["failureReason"]


def test_unknown_ids_are_404_and_bad_input_is_a_problem(system):
    with httpx.Client(timeout=10) as client:
        missing = client.get(f"{system.orders.url}/api/orders/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert client.get(f"{system.fulfillment.url}/api/fulfillment/orders/{uuid.uuid4()}").status_code == 404
        bad = client.post(f"{system.orders.url}/api/orders", json={**order_body(), "items": []})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "items"
        assert client.get(f"{system.fulfillment.url}/api/fulfillment/orders/nope").status_code in (404, 422)
