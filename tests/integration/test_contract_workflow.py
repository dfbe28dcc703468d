"""The contract workflow on the real registry (Apicurio): `make schema-check` reads a shared registry and writes
nothing to it; `make schema-register` registers the current schemas once, with the same ids on every re-run,
at FULL_TRANSITIVE, one subject per event type, carrying over the history of a subject an event had before;
services with AUTO_REGISTER_SCHEMAS=false refuse orders (503, readiness down) while their schema is not
registered, register nothing themselves, and take orders once the pipeline registered it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from contract_models.events import ORDER_CREATED_SCHEMA
from events.settings import EventSettings
from events.topology import COMPATIBILITY, ORDER_EVENTS
from harness.order_bodies import order_body
from harness.orders import post_orders, wait_all_terminal
from harness.system import make_system
from harness.waiting import wait_until
from tools.registry_api import Registry
from tools.schema_check import HISTORY_DIR, EventSchema, check_shared, run
from tools.schema_register import register_all, subjects

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(stack: Any) -> Iterator[Registry]:
    client = Registry(stack.registry_url)
    yield client
    client.close()


def registry_contents(registry: Registry) -> dict[str, list[int]]:
    """Every subject with its versions: what a write would change."""
    return {subject: registry.versions(subject) for subject in registry.subjects()}


def with_field(schema: str, **field: Any) -> str:
    parsed = json.loads(schema)
    parsed["fields"].append(field)
    return json.dumps(parsed)


def test_schema_check_writes_nothing_to_the_registry_it_is_given(
    registry: Registry, stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ORDER_CREATED_SCHEMA
    registered, empty = f"chk-{uuid.uuid4().hex[:8]}-value", f"chk-{uuid.uuid4().hex[:8]}-value"
    registry.set_compatibility_level(registered, COMPATIBILITY)
    assert registry.register(registered, base).status_code == 200
    compatible = with_field(base, name="channel", type="string", default="web")
    incompatible = with_field(base, name="channel", type="string")  # no default: old data cannot fill it
    before = registry_contents(registry)

    assert run(stack.registry_url, [EventSchema("OrderCreated", registered, compatible, [])], scratch=False) == 0
    assert run(stack.registry_url, [EventSchema("OrderCreated", registered, incompatible, [])], scratch=False) == 1
    assert run(stack.registry_url, [EventSchema("OrderCreated", empty, compatible, [(1, base)])], scratch=False) == 0

    assert registry_contents(registry) == before  # nothing registered, no subject created
    assert registry.compatibility_level(registered) == COMPATIBILITY
    out, err = capsys.readouterr()
    assert f"{registered}: OrderCreated is incompatible with the registered versions [1]" in err
    assert f"{empty}: no versions registered" in out


def test_schema_check_holds_a_shared_subject_to_full_transitive_even_at_a_weaker_level(registry: Registry) -> None:
    subject = f"chk-{uuid.uuid4().hex[:8]}-value"
    registry.set_compatibility_level(subject, "BACKWARD")
    assert registry.register(subject, ORDER_CREATED_SCHEMA).status_code == 200
    without_name = json.loads(ORDER_CREATED_SCHEMA)
    without_name["fields"] = [f for f in without_name["fields"] if f["name"] != "customerName"]
    # BACKWARD lets a field be dropped (new readers skip it); consumers still on v1 need it: FULL refuses.
    problems, notes = check_shared(registry, [EventSchema("OrderCreated", subject, json.dumps(without_name), [])])
    assert registry.is_compatible(subject, json.dumps(without_name))[0] is True
    assert len(problems) == 1 and "(FULL_TRANSITIVE)" in problems[0] and "customerName" in problems[0]
    assert any("level is BACKWARD" in note for note in notes)


def test_schema_register_is_idempotent_and_sets_full_transitive(registry: Registry) -> None:
    prefix = f"reg-{uuid.uuid4().hex[:8]}-"
    settings = EventSettings(
        order_events_topic=f"{prefix}order-events", fulfillment_events_topic=f"{prefix}fulfillment-events"
    )
    targets = subjects(settings)
    assert [target.subject for target in targets] == [
        f"{prefix}order-events-orderprocessing.events.OrderCreated",
        f"{prefix}order-events-orderprocessing.events.OrderCancelled",
        f"{prefix}fulfillment-events-value",
    ]

    first = register_all(registry, targets)
    again = register_all(registry, targets)

    assert [o.refusal for o in first + again] == [None] * 6
    assert [o.schema_id for o in again] == [o.schema_id for o in first]
    assert [o.versions for o in again] == [[1], [1], [1]]
    for target in targets:
        assert registry.compatibility_level(target.subject) == "FULL_TRANSITIVE"
        assert registry.lookup(target.subject, target.schema) == next(
            o.schema_id for o in first if o.subject == target.subject
        )


def test_schema_register_carries_the_old_order_events_subject_over_first(registry: Registry) -> None:
    prefix = f"reg-{uuid.uuid4().hex[:8]}-"
    settings = EventSettings(
        order_events_topic=f"{prefix}order-events", fulfillment_events_topic=f"{prefix}fulfillment-events"
    )
    released = (HISTORY_DIR / "OrderCreated.v1.avsc").read_text()
    old = f"{prefix}order-events-value"  # where released (1.2) producers registered OrderCreated
    assert registry.register(old, released).status_code == 200
    created = subjects(settings)[0]
    assert created.history_subject == old

    (outcome,) = register_all(registry, [created])
    assert outcome.refusal is None
    assert registry.versions(created.subject) == [1, 2]  # the released version first, then the current one
    assert json.loads(registry.schema(created.subject, 1)) == json.loads(released)
    assert registry.lookup(created.subject, created.schema) == outcome.schema_id
    assert registry.versions(old) == [1]  # the old subject is left as it was
    assert register_all(registry, [created])[0].versions == [1, 2]  # a re-run adds nothing


def test_without_auto_registration_intake_stays_closed_until_the_pipeline_registers(stack: Any, tmp_path) -> None:
    system = make_system(
        stack.bootstrap_servers,
        stack.registry_url,
        tmp_path,
        AUTO_REGISTER_SCHEMAS="false",
        SCHEMA_CHECK_INTERVAL_SECONDS="1",
    )
    order_subject = ORDER_EVENTS.subject(system.order_topic)
    registry = Registry(stack.registry_url)
    system.start()
    try:
        refused = httpx.post(f"{system.orders.url}/api/orders", json=order_body(), timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "not registered" in refused.json()["detail"] and "AUTO_REGISTER_SCHEMAS" in refused.json()["detail"]
        ready = httpx.get(f"{system.orders.url}/health/ready", timeout=10)
        assert (ready.status_code, ready.json()["status"]) == (503, "down")
        assert ready.json()["eventSchema"]["status"] == "refused"
        assert httpx.get(f"{system.orders.url}/api/orders", timeout=10).json()["items"] == []  # nothing stored
        assert registry.versions(order_subject) == []  # the service registered nothing

        settings = EventSettings(
            order_events_topic=system.order_topic, fulfillment_events_topic=system.fulfillment_topic
        )
        # Registered pretty-printed, as a pipeline might from the files: the services' lookup of their compact
        # text finds it (the registry compares normalized schemas), and no second version appears.
        pretty = [replace(t, schema=json.dumps(json.loads(t.schema), indent=2)) for t in subjects(settings)]
        assert [o.refusal for o in register_all(registry, pretty)] == [None, None, None]
        wait_until(
            lambda: httpx.get(f"{system.orders.url}/health/ready", timeout=10).status_code == 200,
            30,
            message="readiness once the schema is registered",
        )
        ids = post_orders(system.orders.url, 5)
        wait_all_terminal(system.orders.url, ids, timeout=120)
        assert registry.versions(order_subject) == [1]  # still only what the pipeline registered
    finally:
        system.stop()
        registry.close()
