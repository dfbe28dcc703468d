"""On the real broker and registry: an event that can never be published is parked and affects only its own
order; a schema the registry refuses closes order intake (503) until the registry accepts it, with no restart;
a registry that lost its data gets the schema registered again, and new orders go out with ids it knows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from events.topology import ORDER_EVENTS
from harness.order_bodies import OVERSIZE_ORDER_LIMITS, order_body, oversize_order
from harness.orders import post_orders, wait_all_terminal
from harness.schema_versions import schema_without
from harness.system import System, make_system, running_system
from harness.topics import read_topic
from harness.waiting import wait_until
from messaging.avro_codec import wire_schema_id
from order_service import store
from outbox.parking import discard_parked, list_parked, retry_parked
from persistence.engine import make_engine

pytestmark = pytest.mark.integration

SCHEMA_JSON = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
# The Order Service asks the registry this often in these tests (seconds).
CHECK_INTERVAL = "1"


def readiness(system: System) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{system.orders.url}/health/ready", timeout=10)
    return response.status_code, response.json()


def order_engine(system: System) -> Engine:
    return make_engine(system.env["order"]["DATABASE_URL"])


@pytest.fixture
def raised_limits(stack, tmp_path) -> Iterator[System]:
    """The Order Service with body and event limits above the producer's message.max.bytes."""
    with running_system(stack, tmp_path, **OVERSIZE_ORDER_LIMITS) as system:
        yield system


def test_an_oversize_event_is_parked_and_the_orders_after_it_are_fulfilled(raised_limits: System) -> None:
    system = raised_limits
    big = httpx.post(
        f"{system.orders.url}/api/orders",
        content=oversize_order(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert big.status_code == 201, big.text
    big_id = big.json()["orderId"]
    others = post_orders(system.orders.url, 18)
    wait_all_terminal(system.orders.url, others, timeout=120)

    status, ready = wait_until(
        lambda: (r := readiness(system))[1].get("outboxParked") and r, 30, message="the parked event in readiness"
    )
    assert (status, ready["status"], ready["outboxParked"], ready["outboxBacklog"]) == (200, "degraded", 1, 0)
    assert "MSG_SIZE_TOO_LARGE" in ready["outboxParkedReason"]
    assert httpx.get(f"{system.orders.url}/api/orders/{big_id}").json()["status"] == "Pending"

    engine = order_engine(system)
    try:
        [parked] = list_parked(engine, store.outbox)
        assert (parked.key, parked.attempts) == (big_id, 1)
        assert parked.failure_reason is not None and "MSG_SIZE_TOO_LARGE" in parked.failure_reason
        assert retry_parked(engine, store.outbox, parked.id)  # nothing changed: parked again, on record
        wait_until(lambda: [p.attempts for p in list_parked(engine, store.outbox)] == [2], 30, message="re-parked")
        discarded = discard_parked(engine, store.outbox, parked.id)
        assert discarded is not None and discarded.key == big_id
        assert list_parked(engine, store.outbox) == []
    finally:
        engine.dispose()
    status, ready = wait_until(lambda: (r := readiness(system))[1]["status"] == "ok" and r, 30, message="ready ok")
    assert (status, ready["outboxParked"]) == (200, 0)


def test_a_schema_the_registry_refuses_closes_intake_until_the_subject_is_fixed(stack, tmp_path) -> None:
    system = make_system(
        stack.bootstrap_servers, stack.registry_url, tmp_path, SCHEMA_CHECK_INTERVAL_SECONDS=CHECK_INTERVAL
    )
    subject = ORDER_EVENTS.subject(system.order_topic)  # OrderCreated's subject
    registry = httpx.Client(base_url=stack.registry_url, headers=SCHEMA_JSON, timeout=10)
    registry.post(f"/subjects/{subject}/versions", json={"schema": schema_without("customerName")}).raise_for_status()
    registry.put(f"/config/{subject}", json={"compatibility": "BACKWARD"}).raise_for_status()
    system.start()
    try:
        refused = httpx.post(f"{system.orders.url}/api/orders", json=order_body(), timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert [e["field"] for e in refused.json()["errors"]] == ["customerName"]
        status, ready = readiness(system)
        assert (status, ready["status"]) == (503, "down")
        assert ready["eventSchema"]["status"] == "refused" and ready["eventSchema"]["fields"] == ["customerName"]
        assert httpx.get(f"{system.orders.url}/api/orders").json()["items"] == []  # nothing stored

        registry.put(f"/config/{subject}", json={"compatibility": "NONE"}).raise_for_status()
        wait_until(lambda: readiness(system)[0] == 200, 30, message="readiness to recover")
        ids = post_orders(system.orders.url, 5)
        wait_all_terminal(system.orders.url, ids, timeout=120)
        assert readiness(system)[1]["eventSchema"]["status"] == "ok"
    finally:
        system.stop()
        registry.close()


def record_schema_ids(system: System, order_ids: list[str]) -> dict[str, int | None]:
    """The schema id in each order's OrderCreated record on order-events (None: not in the wire format), by order id."""
    wanted = set(order_ids)
    records = read_topic(
        system.bootstrap_servers,
        system.order_topic,
        stop=lambda rs: wanted <= {r.key().decode() for r in rs},
        timeout=60,
    )
    return {r.key().decode(): wire_schema_id(r.value()) for r in records if r.key().decode() in wanted}


def test_after_the_registry_lost_its_data_new_orders_carry_ids_it_knows(private_stack, tmp_path) -> None:
    with running_system(private_stack, tmp_path, SCHEMA_CHECK_INTERVAL_SECONDS=CHECK_INTERVAL) as system:
        before = post_orders(system.orders.url, 5)
        wait_all_terminal(system.orders.url, before, timeout=120)
        subject = ORDER_EVENTS.subject(system.order_topic)  # OrderCreated's subject

        registry = private_stack.registry
        registry.stop()
        registry.journal_topic = "kafkasql-journal-after-loss"  # starts on empty storage
        registry.start()
        client = httpx.Client(base_url=private_stack.registry_url, headers=SCHEMA_JSON, timeout=10)
        wait_until(lambda: subject in client.get("/subjects").json(), 60, message="the schema registered again")

        after = post_orders(system.orders.url, 10)
        wait_all_terminal(system.orders.url, after, timeout=120)
        ids = record_schema_ids(system, after)
        assert len(ids) == 10
        for schema_id in set(ids.values()):
            response = client.get(f"/schemas/ids/{schema_id}")
            assert response.status_code == 200, response.text
            assert json.loads(response.json()["schema"])["name"] == "OrderCreated"
        client.close()
