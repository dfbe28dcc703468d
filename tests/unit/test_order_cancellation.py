"""Cancelling an order in the Order Service, with the real unit of work on a temporary SQLite database: the
request and its OrderCancelled event in one transaction, idempotent, refused once the order shipped or failed;
the fulfillment events then show the outcome on the order."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from contract_models.events import FulfillmentStatus, OrderCancelled
from order_service import store
from order_service.api.representation import order_document
from order_service.domain import OrderStatus
from order_service.errors import OrderNotCancellable, OrderNotFound
from tests.unit import test_order_use_cases as base
from tests.unit.log_capture import json_lines
from tests.unit.test_order_use_cases import TOPIC, World, request, status_changed

run = base.run  # the fixture: a fresh service and database per test


def outbox(world: World) -> list[tuple[str, str, str]]:
    """(event_type, key, payload) of every outbox row, oldest first."""
    with world.engine.connect() as conn:
        rows = conn.execute(select(store.outbox).order_by(store.outbox.c.id)).mappings().all()
    assert all(r["topic"] == TOPIC for r in rows)
    return [(r["event_type"], r["key"], r["payload"]) for r in rows]


def test_a_cancellation_is_recorded_once_with_its_event_after_the_orders(run) -> None:
    async def scenario(world: World) -> None:
        order, _ = await world.service.place(request(), None)
        world.clock.advance(timedelta(seconds=3))
        first = await world.service.cancel(order.order_id, "changed my mind")
        again = await world.service.cancel(order.order_id, "another reason")

        document = order_document(first)
        assert document["status"] == "Pending"
        assert document["cancellation"] == {
            "requestedAt": "2025-03-01T12:00:03Z",
            "outcome": "Requested",
            "reason": "changed my mind",
            "refusalReason": None,
        }
        assert order_document(again) == document  # the same answer, the first reason kept
        rows = outbox(world)
        assert [(t, k) for t, k, _ in rows] == [(t, str(order.order_id)) for t in ("OrderCreated", "OrderCancelled")]
        event = OrderCancelled.model_validate_json(rows[1][2])
        assert (event.orderId, event.reason, event.eventType) == (order.order_id, "changed my mind", "OrderCancelled")
        assert order_document(await world.service.get(order.order_id)) == document

    run(scenario)


def test_an_unknown_order_is_not_found(run) -> None:
    async def scenario(world: World) -> None:
        with pytest.raises(OrderNotFound):
            await world.service.cancel(uuid.uuid4(), None)
        assert outbox(world) == []

    run(scenario)


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        (FulfillmentStatus.Shipped, {"trackingNumber": "SHIP-1", "carrier": "MockCarrier"}),
        (FulfillmentStatus.Failed, {"reason": "gave up"}),
    ],
)
def test_a_shipped_or_failed_order_can_no_longer_be_cancelled(run, status, fields) -> None:
    async def scenario(world: World) -> None:
        order, _ = await world.service.place(request(), None)
        await world.apply(status_changed(order.order_id, status, 1, **fields))
        with pytest.raises(OrderNotCancellable) as raised:
            await world.service.cancel(order.order_id, None)
        assert raised.value.status in ("Fulfilled", "Failed")
        assert [t for t, _, _ in outbox(world)] == ["OrderCreated"]

    run(scenario)


def test_the_fulfillment_services_answer_shows_on_the_order(run) -> None:
    async def scenario(world: World) -> None:
        cancelled, _ = await world.service.place(request(), None)
        refused, _ = await world.service.place(request(), None)
        for order in (cancelled, refused):
            await world.apply(status_changed(order.order_id, FulfillmentStatus.Pending, 0))
            await world.service.cancel(order.order_id, None)
        await world.apply(status_changed(cancelled.order_id, FulfillmentStatus.Cancelled, 1))
        # The refusal comes with the order's shipment, or again with the same state reported once more.
        shipped = {"trackingNumber": "SHIP-1", "carrier": "MockCarrier"}
        await world.apply(status_changed(refused.order_id, FulfillmentStatus.Shipped, 1, **shipped))
        refusal = "the order had shipped before the cancellation was processed"
        await world.apply(
            status_changed(refused.order_id, FulfillmentStatus.Shipped, 1, cancellationRefused=refusal, **shipped)
        )

        done = order_document(await world.service.get(cancelled.order_id))
        assert (done["status"], done["cancellation"]["outcome"]) == ("Cancelled", "Cancelled")
        kept = order_document(await world.service.get(refused.order_id))
        assert (kept["status"], kept["trackingNumber"]) == ("Fulfilled", "SHIP-1")
        assert kept["cancellation"]["outcome"] == "Refused"
        assert kept["cancellation"]["refusalReason"] == refusal
        # A cancelled order is final: a late Shipped report does not move it.
        await world.apply(status_changed(cancelled.order_id, FulfillmentStatus.Delivered, 2, **shipped))
        assert (await world.service.get(cancelled.order_id)).status is OrderStatus.Cancelled

    run(scenario)


def test_a_stale_order_with_a_cancellation_has_both_events_published_again(run) -> None:
    async def scenario(world: World) -> None:
        order, _ = await world.service.place(request(), None)
        await world.service.cancel(order.order_id, "no longer needed")
        with world.engine.begin() as conn:
            conn.execute(store.outbox.delete())  # both published
        world.clock.advance(timedelta(seconds=120))
        assert await world.service.republish_stale_orders(timedelta(seconds=60), timedelta(hours=1)) == 1
        assert [t for t, _, _ in outbox(world)] == ["OrderCreated", "OrderCancelled"]

    run(scenario)


def test_a_cancellation_request_is_one_info_line_naming_the_order(run) -> None:
    async def scenario(world: World) -> None:
        order, _ = await world.service.place(request(), None)
        with json_lines("order_service.use_cases") as lines:
            await world.service.cancel(order.order_id, "changed my mind")
            await world.service.cancel(order.order_id, None)  # asked again: nothing changes, DEBUG only
        (requested,) = lines.at("info")
        assert (requested["event"], requested["orderId"]) == ("cancellation requested", str(order.order_id))
        assert (requested["status"], requested["reason"]) == ("Pending", "changed my mind")
        assert {line["orderId"] for line in lines.all()} == {str(order.order_id)}

    run(scenario)


def test_a_fulfilled_order_whose_cancellation_got_no_answer_is_stale_and_published_again(run) -> None:
    # Its OrderCancelled was lost to the Fulfillment Service (e.g. dead-lettered by a consumer that could not read
    # it): the order shipped, the cancellation would show Requested for ever. It counts as stale and both events
    # go again, so the Fulfillment Service answers with its refusal.
    async def scenario(world: World) -> None:
        order, _ = await world.service.place(request(), None)
        await world.service.cancel(order.order_id, "no longer needed")
        shipped = {"trackingNumber": "SHIP-1", "carrier": "MockCarrier"}
        await world.apply(status_changed(order.order_id, FulfillmentStatus.Shipped, 1, **shipped))
        assert (await world.service.get(order.order_id)).status is OrderStatus.Fulfilled
        with world.engine.begin() as conn:
            conn.execute(store.outbox.delete())  # both published
        world.clock.advance(timedelta(seconds=120))
        assert await world.service.stale_orders(timedelta(seconds=60)) == (1, timedelta(seconds=120))
        assert await world.service.republish_stale_orders(timedelta(seconds=60), timedelta(hours=1)) == 1
        assert [t for t, _, _ in outbox(world)] == ["OrderCreated", "OrderCancelled"]

        refusal = "the order had shipped before the cancellation was processed"
        await world.apply(
            status_changed(order.order_id, FulfillmentStatus.Shipped, 1, cancellationRefused=refusal, **shipped)
        )
        world.clock.advance(timedelta(hours=2))
        assert await world.service.stale_orders(timedelta(seconds=60)) == (0, None)  # answered: no longer stale

    run(scenario)
