"""On the real broker and registry: an order cancelled while the provider is slow and failing never ships (the
provider's ledger has no shipment for it, even once the provider works again); an order whose provider call is
under way when the cancellation arrives and succeeds ships, and the order shows why the cancellation was refused."""

from __future__ import annotations

import httpx
import pytest

from fulfillment_service.domain import REFUSED_SHIPPED
from harness.order_bodies import order_body
from harness.reconcile import ledger_requests
from harness.system import System, running_system
from harness.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def system(stack, tmp_path):
    with running_system(
        stack,
        tmp_path,
        PROVIDER_CONTROL_ENABLED="true",
        RETRY_INITIAL_DELAY_SECONDS="0.2",
        RETRY_MAX_DELAY_SECONDS="0.5",
        RETRY_MAX_ATTEMPTS="1000",
    ) as running:
        yield running


def ledger(system: System) -> dict[str, int]:
    return ledger_requests(system.data_dir / "shipping-provider.db")


def wait_for(client: httpx.Client, order_id: str, statuses: str, timeout: float = 25) -> dict:
    return client.get(f"/api/orders/{order_id}", params={"waitFor": statuses, "timeout": timeout}).json()


def test_an_order_cancelled_while_the_provider_is_slow_and_failing_never_ships(system: System) -> None:
    system.set_provider(failureRate=1.0, minLatencyMs=800, maxLatencyMs=800)
    with httpx.Client(base_url=system.orders.url, timeout=40) as client:
        order_id = client.post("/api/orders", json=order_body()).json()["orderId"]
        assert wait_for(client, order_id, "Processing")["status"] == "Processing"  # picked up, calls failing

        answer = client.post(f"/api/orders/{order_id}/cancel", json={"reason": "found it cheaper"})
        assert answer.status_code == 202
        assert answer.json()["cancellation"]["outcome"] == "Requested"
        assert client.post(f"/api/orders/{order_id}/cancel").json()["cancellation"] == answer.json()["cancellation"]

        cancelled = wait_for(client, order_id, "Cancelled,Fulfilled,Failed")
        assert cancelled["status"] == "Cancelled"
        assert cancelled["cancellation"]["outcome"] == "Cancelled"
        assert cancelled["cancellation"]["reason"] == "found it cheaper"

        # The provider works again: a new order ships, the cancelled one never does (no retry is left).
        system.set_provider(failureRate=0.0, minLatencyMs=50, maxLatencyMs=50)
        later = client.post("/api/orders", json=order_body()).json()["orderId"]
        assert wait_for(client, later, "Fulfilled,Failed")["status"] == "Fulfilled"
        assert ledger(system).get(order_id) is None and ledger(system).get(later) == 1
        assert client.get(f"/api/orders/{order_id}").json()["status"] == "Cancelled"
    fulfillment = httpx.get(f"{system.fulfillment.url}/api/fulfillment/orders/{order_id}", timeout=10).json()
    assert fulfillment["status"] == "Cancelled"


def test_an_order_that_ships_during_its_call_refuses_the_cancellation(system: System) -> None:
    system.set_provider(failureRate=0.0, minLatencyMs=3000, maxLatencyMs=3000)
    with httpx.Client(base_url=system.orders.url, timeout=40) as client:
        order_id = client.post("/api/orders", json=order_body()).json()["orderId"]
        assert wait_for(client, order_id, "Processing")["status"] == "Processing"  # the 3 s call is under way
        assert client.post(f"/api/orders/{order_id}/cancel").status_code == 202

        refused = wait_until(
            lambda: (o := client.get(f"/api/orders/{order_id}").json())["cancellation"]["outcome"] == "Refused" and o,
            timeout=30,
        )
        assert refused["status"] == "Fulfilled" and refused["trackingNumber"]
        assert refused["cancellation"]["refusalReason"] == REFUSED_SHIPPED
        assert ledger(system).get(order_id) == 1
        # Asking again: the same answer; an order that is Fulfilled without a request gets 409.
        assert client.post(f"/api/orders/{order_id}/cancel").json()["cancellation"]["outcome"] == "Refused"
        system.set_provider(minLatencyMs=50, maxLatencyMs=50)
        shipped = client.post("/api/orders", json=order_body()).json()["orderId"]
        assert wait_for(client, shipped, "Fulfilled,Failed")["status"] == "Fulfilled"
        conflict = client.post(f"/api/orders/{shipped}/cancel")
        assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/problem+json"
