"""Order acceptance never waits for Kafka or the registry, and nothing accepted is lost or doubled."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from harness.order_bodies import order_body
from harness.orders import wait_all_terminal
from harness.system import running_system
from harness.topics import read_topic
from harness.waiting import wait_until

pytestmark = pytest.mark.integration

COUNT = 100


def post_timed(base_url: str, count: int) -> tuple[list[str], list[float]]:
    ids, latencies = [], []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for i in range(count):
            started = time.perf_counter()
            response = client.post("/api/orders", json=order_body(customer=f"cust-{i}"))
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
            ids.append(response.json()["orderId"])
    return ids, latencies


def events_by_order(system, order_ids: list[str], timeout: float = 60) -> Counter:
    wanted = set(order_ids)
    records = read_topic(
        system.bootstrap_servers,
        system.order_topic,
        stop=lambda rs: wanted <= {r.key().decode() for r in rs},
        timeout=timeout,
    )
    # Keep reading briefly is unnecessary: duplicates would be published before or with the originals.
    return Counter(r.key().decode() for r in records if r.key().decode() in wanted)


@pytest.fixture
def outage_system(private_stack, tmp_path):
    # Stale orders are never published again here: these count the copies the outbox relay publishes.
    with running_system(private_stack, tmp_path, PROVIDER_FAILURE_RATE="0.1", STALE_ORDER_SECONDS="3600") as system:
        yield system, private_stack


def test_broker_down_orders_accepted_then_published_exactly_once(outage_system):
    system, stack = outage_system
    stack.broker.stop()
    ids, latencies = post_timed(system.orders.url, COUNT)
    # Acceptance did not wait on the broker: a blocked send would take the producer's timeout (seconds).
    assert max(latencies) < 2.0, f"slowest POST took {max(latencies):.2f}s"
    statuses = {httpx.get(f"{system.orders.url}/api/orders/{i}").json()["status"] for i in ids[:10]}
    assert statuses == {"Pending"}
    ready = wait_until(
        lambda: (r := system.order_readiness())["dependencies"]["kafka"]["status"] == "down" and r,
        15,
        message="readiness to report kafka down",
    )
    assert ready["status"] == "degraded" and ready["outboxBacklog"] >= COUNT
    assert httpx.get(f"{system.orders.url}/health/live").status_code == 200

    stack.broker.start()
    counts = events_by_order(system, ids)
    assert len(counts) == COUNT and set(counts.values()) == {1}
    wait_all_terminal(system.orders.url, ids, timeout=120)
    wait_until(lambda: system.order_readiness()["outboxBacklog"] == 0, 30, message="outbox to drain")


def test_registry_down_orders_accepted_then_published_exactly_once(outage_system):
    system, stack = outage_system
    stack.registry.stop()  # before the first event: the schema cannot be registered yet
    ids, latencies = post_timed(system.orders.url, COUNT)
    assert max(latencies) < 2.0
    ready = wait_until(
        lambda: (r := system.order_readiness())["dependencies"]["schemaRegistry"]["status"] == "down" and r,
        15,
        message="readiness to report the registry down",
    )
    assert ready["status"] == "degraded" and ready["outboxBacklog"] == COUNT

    stack.registry.start()
    counts = events_by_order(system, ids)
    assert len(counts) == COUNT and set(counts.values()) == {1}
    wait_all_terminal(system.orders.url, ids, timeout=120)


def test_killed_order_service_relays_its_backlog_after_restart(outage_system):
    system, stack = outage_system
    stack.broker.stop()  # so the accepted orders' events are certainly not yet relayed
    ids, _ = post_timed(system.orders.url, COUNT)
    system.orders.kill()
    stack.broker.start()
    system.orders.start()
    counts = events_by_order(system, ids)
    assert len(counts) == COUNT and set(counts.values()) == {1}
    wait_all_terminal(system.orders.url, ids, timeout=120)
