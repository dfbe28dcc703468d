"""The fulfillment read use case and its HTTP edge: GET /api/fulfillment/orders/{orderId} answers the stored
fulfillment as the contract's FulfillmentStatus, and an order never picked up with a 404 problem naming orderId."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fulfillment_service import store
from fulfillment_service.api import fulfillment_router
from fulfillment_service.domain import Fulfillment, Shipment, pick_up
from fulfillment_service.errors import FulfillmentNotFound
from fulfillment_service.queries import FulfillmentQueries
from fulfillment_service.unit_of_work import SqlFulfillmentReader
from httpapi.app import contract_app
from persistence.engine import make_engine, write_transaction

PICKED_UP = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/fulfillment.db")
    store.metadata.create_all(engine)
    yield engine
    engine.dispose()


def stored_shipped(engine: Engine) -> Fulfillment:
    order_id = uuid.uuid4()
    picked = pick_up(order_id, PICKED_UP, PICKED_UP, PICKED_UP + timedelta(seconds=30)).fulfillment
    shipment = Shipment("SHIP-123", "MockCarrier", datetime(2025, 3, 4, tzinfo=UTC))
    shipped = picked.ship(shipment, PICKED_UP + timedelta(seconds=1), None).fulfillment
    with write_transaction(engine) as conn:
        store.insert_if_absent(conn, shipped)
    return shipped


class NoFulfillments:
    async def get(self, order_id: uuid.UUID) -> Fulfillment | None:
        return None


def test_an_order_never_picked_up_is_not_found() -> None:
    order_id = uuid.uuid4()
    with pytest.raises(FulfillmentNotFound) as raised:
        asyncio.run(FulfillmentQueries(NoFulfillments()).get(order_id))
    assert raised.value.order_id == order_id


def test_the_http_edge_answers_the_stored_fulfillment_or_a_404_problem(engine: Engine) -> None:
    shipped = stored_shipped(engine)
    app = contract_app("Fulfillment Service", "fulfillment-service", None, max_body_bytes=1_048_576)
    app.include_router(fulfillment_router(FulfillmentQueries(SqlFulfillmentReader(engine))))
    unknown = uuid.uuid4()
    with TestClient(app) as client:
        found = client.get(f"/api/fulfillment/orders/{shipped.order_id}")
        missing = client.get(f"/api/fulfillment/orders/{unknown}")

    assert found.status_code == 200
    assert found.json() == {
        "orderId": str(shipped.order_id),
        "status": "Shipped",
        "trackingNumber": "SHIP-123",
        "carrier": "MockCarrier",
        "estimatedDelivery": "2025-03-04T00:00:00Z",
        "failureReason": None,
        "cancellationRefused": None,
        "attempts": 1,
        "updatedAt": "2025-03-01T12:00:01.123000Z",
    }
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": f"No fulfillment for order {unknown}.",
        "instance": f"/api/fulfillment/orders/{unknown}",
        "errors": [{"field": "orderId", "message": "no such order"}],
    }
