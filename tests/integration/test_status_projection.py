"""The order's status follows fulfillment events from Kafka: idempotent and monotonic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from contract_models.events import FulfillmentStatus
from events.codecs import codec_for
from events.topology import FULFILLMENT_EVENTS
from harness.order_bodies import order_body
from harness.records import produce_records
from harness.system import make_system
from harness.waiting import wait_until
from infra.ports import free_port
from infra.services import order_service
from messaging.topics import ensure_topics
from order_service.settings import OrderServiceSettings
from tests.sample_events import status_changed

pytestmark = pytest.mark.integration


@pytest.fixture
def orders_only(stack, tmp_path):
    """The Order Service alone: this test plays the Fulfillment Service's part on the topic."""
    system = make_system(stack.bootstrap_servers, stack.registry_url, tmp_path)
    settings = OrderServiceSettings(**{k.lower(): v for k, v in system.env["order"].items()})
    ensure_topics(settings, settings.topic_specs())
    service = order_service(free_port(), system.env["order"], tmp_path / "logs")
    service.start()
    yield system, service
    service.stop()


def publisher(system):
    codec = codec_for(SchemaRegistryClient({"url": system.registry_url}), FULFILLMENT_EVENTS, system.fulfillment_topic)

    def publish(order_id: str, status: FulfillmentStatus, sequence: int, **fields) -> None:
        event = status_changed(status, orderId=uuid.UUID(order_id), sequence=sequence, **fields)
        produce_records(system.bootstrap_servers, system.fulfillment_topic, [(order_id, codec.encode(event))])

    return publish


def test_duplicate_and_out_of_order_events(orders_only):
    system, service = orders_only
    publish = publisher(system)
    with httpx.Client(base_url=service.url, timeout=30) as client:
        first = client.post("/api/orders", json=order_body()).json()["orderId"]
        second = client.post("/api/orders", json=order_body()).json()["orderId"]

        def status(order_id):
            return client.get(f"/api/orders/{order_id}").json()

        # In order, each delivered twice: the duplicates change nothing.
        publish(first, FulfillmentStatus.Pending, 0)
        publish(first, FulfillmentStatus.Pending, 0)
        wait_until(lambda: status(first)["status"] == "Processing", 30, message="Processing")
        eta = datetime(2030, 1, 2, tzinfo=UTC)
        publish(
            first, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-ONE", carrier="MockCarrier", estimatedDelivery=eta
        )
        publish(first, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-TWO", carrier="MockCarrier")
        # Out of order: the outcome arrives before the pick-up, and a late failure after it.
        publish(second, FulfillmentStatus.Failed, 1, reason="address unknown")
        publish(second, FulfillmentStatus.Pending, 0)
        publish(first, FulfillmentStatus.Failed, 1, reason="late and contradicting")
        marker = client.post("/api/orders", json=order_body()).json()["orderId"]
        publish(marker, FulfillmentStatus.Pending, 0)  # once this shows, everything before it was applied
        wait_until(lambda: status(marker)["status"] == "Processing", 30, message="marker")

        shipped = status(first)
        assert shipped["status"] == "Fulfilled"
        assert shipped["trackingNumber"] == "SHIP-ONE" and shipped["carrier"] == "MockCarrier"
        assert shipped["estimatedDelivery"].startswith("2030-01-02")
        failed = status(second)
        assert failed["status"] == "Failed" and failed["failureReason"] == "address unknown"

        # Long poll: a waiting client is answered as soon as the change is applied.
        third = client.post("/api/orders", json=order_body()).json()["orderId"]
        publish(third, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-3", carrier="MockCarrier")
        waited = client.get(f"/api/orders/{third}", params={"waitFor": "Fulfilled,Failed", "timeout": 20}).json()
        assert waited["status"] == "Fulfilled"
