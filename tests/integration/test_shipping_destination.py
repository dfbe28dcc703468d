"""An order's shipping address goes from POST /api/orders through OrderCreated to the shipping provider: shipped
abroad (outside PROVIDER_HOME_COUNTRY, DE by default), its estimated delivery is later, as the Fulfillment
Service's and the Order Service's APIs show; an order without an address ships as before."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from fulfillment_service.shipping import ABROAD_DELIVERY_DAYS, HOME_DELIVERY_DAYS
from harness.order_bodies import order_body
from harness.orders import wait_all_terminal
from harness.system import running_system

pytestmark = pytest.mark.integration

PARIS = {
    "recipientName": "Marie Curie",
    "addressLines": ["36 Quai de Bethune"],
    "city": "Paris",
    "postalCode": "75004",
    "country": "FR",
}
BERLIN = {**PARIS, "recipientName": "Lise Meitner", "city": "Berlin", "postalCode": "10117", "country": "DE"}


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_an_order_shipped_abroad_is_estimated_later_and_one_without_an_address_as_before(stack, tmp_path):
    with running_system(stack, tmp_path, PROVIDER_FAILURE_RATE="0") as system:
        bodies = {
            "abroad": {**order_body(1), "shippingAddress": PARIS},
            "home": {**order_body(2), "shippingAddress": BERLIN},
            "none": order_body(3),
        }
        with httpx.Client(base_url=system.orders.url, timeout=10) as client:
            created = {name: client.post("/api/orders", json=body) for name, body in bodies.items()}
        assert all(response.status_code == 201 for response in created.values()), created
        ids = {name: response.json()["orderId"] for name, response in created.items()}

        final = wait_all_terminal(system.orders.url, list(ids.values()), timeout=90)

        with httpx.Client(base_url=system.fulfillment.url, timeout=10) as client:
            fulfillment = {name: client.get(f"/api/fulfillment/orders/{i}").json() for name, i in ids.items()}
        for name, order_id in ids.items():
            order = final[order_id]
            assert order["status"] == "Fulfilled", order
            assert fulfillment[name]["status"] == "Shipped"
            assert order["estimatedDelivery"] == fulfillment[name]["estimatedDelivery"]
            assert order["shippingAddress"] == bodies[name].get("shippingAddress")
        # From the shipment being recorded, a moment after the provider created it: hence the 0.01-day slack.
        days = {
            name: (parse(f["estimatedDelivery"]) - parse(f["updatedAt"])) / timedelta(days=1)
            for name, f in fulfillment.items()
        }
        assert ABROAD_DELIVERY_DAYS[0] - 0.01 <= days["abroad"] <= ABROAD_DELIVERY_DAYS[1], days
        assert HOME_DELIVERY_DAYS[0] - 0.01 <= days["home"] <= HOME_DELIVERY_DAYS[1], days
        assert HOME_DELIVERY_DAYS[0] - 0.01 <= days["none"] <= HOME_DELIVERY_DAYS[1], days
