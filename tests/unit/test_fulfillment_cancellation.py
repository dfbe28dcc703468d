"""Cancelling an order in the Fulfillment Service, with the real unit of work on a temporary SQLite database and a
scripted provider: cancelled before a call means no call ever (a scheduled retry too); cancelled during a call
lets the call finish and its outcome decide (shipped: refused, failed: Cancelled without a retry); already
shipped: refused. The call is held on an event, so the race has the same outcome every run."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from contract_models.events import FulfillmentStatus, OrderCancelled
from fulfillment_service.domain import REFUSED_SHIPPED, Destination, Status, pick_up
from fulfillment_service.shipping import ProviderError
from tests.unit import test_fulfillment_use_cases as base
from tests.unit.fake_shipping import FakeShippingProvider, Gate
from tests.unit.log_capture import json_lines
from tests.unit.test_fulfillment_use_cases import LEASE, RETRY_DELAY, T0, World, order_created

run = base.run  # the fixture: a fresh fulfiller and database per test


def order_cancelled(order_id: uuid.UUID) -> OrderCancelled:
    return OrderCancelled(eventId=uuid.uuid4(), timestamp=T0, orderId=order_id, reason="changed my mind")


def reported(w: World, order_id: uuid.UUID) -> list[tuple[FulfillmentStatus, int, str | None]]:
    return [(e.status, e.sequence, e.cancellationRefused) for e in w.events(order_id)]


# -- the domain alone -------------------------------------------------------------------------------


def test_a_pending_order_without_a_call_under_way_is_cancelled_at_once() -> None:
    pending = pick_up(uuid.uuid4(), T0, T0, T0 + LEASE).fulfillment
    transition = pending.cancel(T0)
    assert transition is not None and transition.fulfillment.status is Status.Cancelled
    assert transition.event is not None
    assert (transition.event.status, transition.event.sequence) == (FulfillmentStatus.Cancelled, 1)
    assert transition.fulfillment.cancel(T0) is None  # cancelled already: nothing to change


def test_a_call_under_way_leaves_the_cancellation_to_its_outcome() -> None:
    calling = pick_up(uuid.uuid4(), T0, T0, T0 + LEASE).fulfillment.begin_call(T0).fulfillment
    requested = calling.cancel(T0)
    assert requested is not None and requested.event is None
    assert requested.fulfillment.status is Status.Pending and requested.fulfillment.cancel_requested_at == T0
    assert requested.fulfillment.cancel(T0) is None  # processed before: a redelivery changes nothing
    # A next call does not start: the cancellation takes effect instead.
    assert requested.fulfillment.begin_call(T0).fulfillment.status is Status.Cancelled


# -- the use cases ------------------------------------------------------------------------------------


def test_an_order_cancelled_before_its_order_created_is_never_called(run) -> None:
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
        await w.fulfiller.handle_order_created(event)
        assert w.provider.calls == []
        assert w.stored(event.orderId).status is Status.Cancelled
        # Cancelled, then reported once more for the OrderCreated that came after.
        assert reported(w, event.orderId) == [(FulfillmentStatus.Cancelled, 1, None)] * 2

    run(scenario, FakeShippingProvider())


def test_a_cancellation_drops_the_retry_scheduled_before_it(run) -> None:
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)  # the call fails: a retry is scheduled
        assert w.stored(event.orderId).next_attempt_at == T0 + RETRY_DELAY
        await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
        w.clock.advance(LEASE * 2)
        assert await w.retry_due() == []  # the scheduler claims Pending orders only
        assert w.provider.calls == [str(event.orderId)]  # no call after the cancellation
        assert w.stored(event.orderId).status is Status.Cancelled
        assert reported(w, event.orderId) == [
            (FulfillmentStatus.Pending, 0, None),
            (FulfillmentStatus.Cancelled, 1, None),
        ]

    run(scenario, FakeShippingProvider(ProviderError("503")))


@pytest.mark.parametrize("outcome", ["ships", "fails"])
def test_a_cancellation_during_a_call_lets_the_call_decide(run, outcome: str) -> None:
    gate = Gate()

    async def scenario(w: World) -> None:
        event = order_created()
        call = asyncio.create_task(w.fulfiller.handle_order_created(event))
        await gate.entered.wait()  # the provider call is under way, and held
        await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
        assert w.stored(event.orderId).status is Status.Pending  # recorded, waiting for the call's outcome
        gate.open()
        await call
        w.clock.advance(LEASE * 2)
        assert await w.retry_due() == []
        assert w.provider.calls == [str(event.orderId)]  # that call only
        stored = w.stored(event.orderId)
        if outcome == "ships":
            assert (stored.status, stored.cancel_refused) == (Status.Shipped, REFUSED_SHIPPED)
            assert reported(w, event.orderId)[-1] == (FulfillmentStatus.Shipped, 1, REFUSED_SHIPPED)
        else:
            assert stored.status is Status.Cancelled
            assert reported(w, event.orderId)[-1] == (FulfillmentStatus.Cancelled, 1, None)

    provider = FakeShippingProvider(gate) if outcome == "ships" else FailingAfterGate(gate)
    run(scenario, provider)


class FailingAfterGate(FakeShippingProvider):
    """The first call waits for the gate, then fails (the provider's 503)."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    async def create_shipment(self, idempotency_key: str, destination: Destination | None = None):  # type: ignore[no-untyped-def]
        self.calls.append(idempotency_key)
        await self.gate.wait()
        raise ProviderError("503 after a while")


def test_an_order_already_shipped_refuses_the_cancellation_and_says_why(run) -> None:
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
        await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))  # redelivered: reported again
        stored = w.stored(event.orderId)
        assert (stored.status, stored.cancel_refused) == (Status.Shipped, REFUSED_SHIPPED)
        assert reported(w, event.orderId) == [
            (FulfillmentStatus.Pending, 0, None),
            (FulfillmentStatus.Shipped, 1, None),
            (FulfillmentStatus.Shipped, 1, REFUSED_SHIPPED),
            (FulfillmentStatus.Shipped, 1, REFUSED_SHIPPED),
        ]

    run(scenario, FakeShippingProvider())


def test_a_cancellation_of_a_scheduled_retry_due_now_wins_over_its_call(run) -> None:
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)  # fails: retry due after RETRY_DELAY
        w.clock.advance(timedelta(seconds=5))
        claimed = await w.uow.claim_due_for_retry(w.fulfiller.call_lease, 10, set())
        assert [f.order_id for f in claimed] == [event.orderId]
        await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))  # before the retry's call starts
        await w.fulfiller.attempt(claimed[0])
        assert w.provider.calls == [str(event.orderId)]  # the first call only; the retry made none
        assert w.stored(event.orderId).status is Status.Cancelled

    run(scenario, FakeShippingProvider(ProviderError("503")))


# -- what an operator reads -----------------------------------------------------------------------------


def test_a_cancellation_is_one_info_line_naming_the_order(run) -> None:
    async def scenario(w: World) -> None:
        event = order_created()
        with json_lines("fulfillment_service.use_cases") as lines:
            await w.fulfiller.handle_order_created(event)  # the call fails: a retry is scheduled
            await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
            await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))  # redelivered: no new line
        info = lines.at("info")
        assert [line["event"] for line in info] == ["fulfillment picked up", "retry scheduled", "order cancelled"]
        assert {line["orderId"] for line in lines.all()} == {str(event.orderId)}
        assert info[-1]["status"] == "Cancelled"

    run(scenario, FakeShippingProvider(ProviderError("503")))


def test_a_refused_cancellation_is_logged_with_its_reason(run) -> None:
    gate = Gate()

    async def scenario(w: World) -> None:
        event = order_created()
        with json_lines("fulfillment_service.use_cases") as lines:
            call = asyncio.create_task(w.fulfiller.handle_order_created(event))
            await gate.entered.wait()
            await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
            gate.open()
            await call
            await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))  # after shipping: reported again
        info = lines.at("info")
        assert [line["event"] for line in info] == [
            "fulfillment picked up",
            "cancellation awaits the provider call",
            "order shipped",
            "cancellation refused",
        ]
        assert info[-1]["reason"] == REFUSED_SHIPPED and info[-1]["status"] == "Shipped"
        assert {line["orderId"] for line in lines.all()} == {str(event.orderId)}

    run(scenario, FakeShippingProvider(gate))


def test_a_cancellation_that_read_no_row_is_decided_again_on_the_row_another_instance_inserted(run, monkeypatch):
    # On PostgreSQL, SELECT ... FOR UPDATE locks no row that is not there yet: another instance can insert the
    # order's row between the cancellation's read and its own insert. The cancellation must not be lost then.
    from fulfillment_service import store

    async def scenario(w: World) -> None:
        event = order_created()
        await w.uow.add(pick_up(event.orderId, event.timestamp, T0, T0 + LEASE))  # the other instance's row
        real_get = store.get
        reads: list[bool] = []

        def get_before_the_insert_was_seen(conn, order_id, for_update=False):
            reads.append(for_update)
            return None if len(reads) == 1 else real_get(conn, order_id, for_update=for_update)

        monkeypatch.setattr(store, "get", get_before_the_insert_was_seen)
        with json_lines("fulfillment_service.unit_of_work") as lines:
            await w.fulfiller.handle_order_cancelled(order_cancelled(event.orderId))
        monkeypatch.setattr(store, "get", real_get)
        assert w.stored(event.orderId).status is Status.Cancelled
        assert reported(w, event.orderId)[-1] == (FulfillmentStatus.Cancelled, 1, None)
        assert lines.at("warning") == []
        await w.fulfiller.handle_order_created(event)  # its OrderCreated, processed after: no call
        assert w.provider.calls == []

    run(scenario, FakeShippingProvider())
