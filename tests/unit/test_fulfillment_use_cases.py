"""The fulfillment use cases with a fake provider and the real unit of work on a temporary SQLite database:
what the provider is asked, what is stored, and which events go to the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged, OrderCreated, ShippingAddress
from contracts.order_rules import check_order_created
from fulfillment_service import store
from fulfillment_service.domain import Destination, Fulfillment, Status, pick_up
from fulfillment_service.resilience import BackoffPolicy, BreakerState, CircuitBreaker
from fulfillment_service.shipping import ProviderError
from fulfillment_service.unit_of_work import SqlUnitOfWork
from fulfillment_service.use_cases import Fulfiller
from observability.metrics import Metrics
from persistence.engine import make_engine
from persistence.group_commit import GroupCommitter
from persistence.migrations import upgrade_to_head
from tests.sample_events import order_created as sample_order_created
from tests.unit.fake_shipping import HANG, FakeShippingProvider, Gate
from tests.unit.log_capture import json_lines
from tests.unit.manual_clock import ManualClock

MIGRATIONS = Path(__file__).resolve().parents[2] / "fulfillment_service" / "migrations"
TOPIC = "fulfillment-events"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RETRY_DELAY = timedelta(seconds=1)  # BackoffPolicy(initial=1, maximum=1) always waits 1 s
LEASE = timedelta(seconds=30)


@dataclass
class World:
    fulfiller: Fulfiller
    uow: SqlUnitOfWork
    provider: FakeShippingProvider
    breaker: CircuitBreaker
    clock: ManualClock
    engine: Engine
    wakes: list[None] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def sample(self, name: str, **labels: str) -> float:
        """A sample of the fulfiller's metrics (0 when it has none yet)."""
        return self.metrics.sample(name, **labels) or 0.0

    def events(self, order_id: uuid.UUID) -> list[FulfillmentStatusChanged]:
        """The order's events in the outbox, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(store.outbox).where(store.outbox.c.key == str(order_id)).order_by("id"))
            rows = rows.mappings().all()
        assert all((r["topic"], r["event_type"]) == (TOPIC, "FulfillmentStatusChanged") for r in rows)
        return [FulfillmentStatusChanged.model_validate_json(r["payload"]) for r in rows]

    def history(self, order_id: uuid.UUID) -> list[tuple[FulfillmentStatus, int, int]]:
        """(status, sequence, attempts) of the order's events."""
        return [(e.status, e.sequence, e.attempts) for e in self.events(order_id)]

    def stored(self, order_id: uuid.UUID) -> Fulfillment:
        with self.engine.connect() as conn:
            fulfillment = store.get(conn, order_id)
        assert fulfillment is not None
        return fulfillment

    async def retry_due(self) -> list[Fulfillment]:
        """What the retry scheduler does on a tick: claim the due orders and attempt each."""
        claimed = await self.uow.claim_due_for_retry(self.fulfiller.call_lease, 100, self.fulfiller.active)
        for fulfillment in claimed:
            await self.fulfiller.attempt(fulfillment)
        return claimed


def order_created() -> OrderCreated:
    """An order accepted a second before the fulfiller's clock starts."""
    return sample_order_created(timestamp=T0 - timedelta(seconds=1))


Scenario = Callable[[World], Awaitable[None]]


@pytest.fixture
def run(tmp_path) -> Iterator[Callable[..., None]]:
    """run(scenario, provider, **options) runs scenario against a fresh fulfiller and database."""
    engine = make_engine(f"sqlite:///{tmp_path}/fulfillment.db")
    upgrade_to_head(engine, MIGRATIONS)

    def go(
        scenario: Scenario,
        provider: FakeShippingProvider,
        *,
        max_attempts: int = 3,
        breaker_threshold: int = 5,
        timeout: float = 5.0,
        delivery_after: float = 0.0,
    ) -> None:
        async def main() -> None:
            committer = GroupCommitter(engine, "test-fulfillment-db")
            clock = ManualClock(T0)
            wakes: list[None] = []
            uow = SqlUnitOfWork(committer, TOPIC, lambda: wakes.append(None), clock)
            breaker = CircuitBreaker(breaker_threshold, reset_seconds=60)
            retry = BackoffPolicy(max_attempts, deadline_seconds=300, initial=1, maximum=1)
            metrics = Metrics()
            fulfiller = Fulfiller(uow, provider, breaker, retry, timeout, delivery_after, clock, metrics=metrics)
            try:
                await scenario(World(fulfiller, uow, provider, breaker, clock, engine, wakes, metrics))
            finally:
                await committer.stop()

        asyncio.run(main())

    yield go
    engine.dispose()


def test_a_new_order_ships_once_and_reports_pending_then_shipped(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        order_id = event.orderId
        assert w.provider.calls == [str(order_id)]  # the order id is the idempotency key
        assert w.provider.lookups == []  # a first attempt has nothing to look up
        shipment = w.provider.shipments[str(order_id)]
        f = w.stored(order_id)
        assert (f.status, f.attempts, f.sequence, f.next_attempt_at) == (Status.Shipped, 1, 1, None)
        assert (f.tracking_number, f.carrier, f.estimated_delivery) == (
            shipment.tracking_number,
            "FakeCarrier",
            shipment.estimated_delivery,
        )
        assert (f.picked_up_at, f.updated_at, f.order_timestamp) == (T0, T0, event.timestamp)
        assert w.history(order_id) == [(FulfillmentStatus.Pending, 0, 0), (FulfillmentStatus.Shipped, 1, 1)]
        shipped = w.events(order_id)[1]
        assert (shipped.trackingNumber, shipped.carrier, shipped.estimatedDelivery, shipped.timestamp) == (
            shipment.tracking_number,
            "FakeCarrier",
            shipment.estimated_delivery,
            T0,
        )
        assert (w.fulfiller.shipped, w.fulfiller.failed, len(w.wakes)) == (1, 0, 2)
        assert w.breaker.state == "closed"
        assert w.sample("fulfillment_outcomes_total", status="Shipped") == 1
        assert w.sample("provider_call_duration_seconds_count", outcome="success") == 1
        assert w.sample("provider_call_duration_seconds_count", outcome="failure") == 0

    run(scenario, FakeShippingProvider())


def test_a_failing_order_is_retried_when_due_then_failed(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        order_id = event.orderId
        waiting = w.stored(order_id)
        assert (waiting.status, waiting.attempts, waiting.failure_reason) == (Status.Pending, 1, "503 Unavailable")
        assert waiting.next_attempt_at == T0 + RETRY_DELAY
        assert w.history(order_id) == [(FulfillmentStatus.Pending, 0, 0)]  # a retry publishes nothing

        assert await w.retry_due() == []  # not due yet
        w.clock.advance(RETRY_DELAY)
        assert len(await w.retry_due()) == 1
        assert w.provider.lookups == [str(order_id)]  # asked before calling again
        assert w.provider.calls == [str(order_id)] * 2
        failed = w.stored(order_id)
        assert (failed.status, failed.attempts, failed.sequence) == (Status.Failed, 2, 1)
        assert failed.failure_reason == "gave up after 2 attempt(s): 503 again"
        assert w.history(order_id) == [(FulfillmentStatus.Pending, 0, 0), (FulfillmentStatus.Failed, 1, 2)]
        assert w.events(order_id)[1].reason == failed.failure_reason
        assert (w.fulfiller.shipped, w.fulfiller.failed) == (0, 1)
        assert await w.retry_due() == []  # a failed order is never due again
        assert w.sample("fulfillment_retries_scheduled_total") == 1  # the first failure; the second gave up
        assert w.sample("provider_call_failures_total", reason="error") == 2
        assert w.sample("provider_call_duration_seconds_count", outcome="failure") == 2
        assert w.sample("fulfillment_outcomes_total", status="Failed") == 1
        assert w.sample("fulfillment_outcomes_total", status="Shipped") == 0

    run(
        scenario,
        FakeShippingProvider(ProviderError("503 Unavailable"), ProviderError("503 again")),
        max_attempts=2,
    )


def test_a_call_that_does_not_answer_in_time_is_a_failed_attempt(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        waiting = w.stored(event.orderId)
        assert (waiting.status, waiting.attempts) == (Status.Pending, 1)
        assert waiting.failure_reason == "shipping provider did not answer within 0.05 s"
        assert w.sample("provider_call_failures_total", reason="timeout") == 1
        assert w.sample("fulfillment_retries_scheduled_total") == 1

    run(scenario, FakeShippingProvider(HANG), timeout=0.05)


def test_while_the_breaker_is_open_orders_wait_without_a_call_or_an_attempt(run):
    async def scenario(w: World) -> None:
        first, second = order_created(), order_created()
        await w.fulfiller.handle_order_created(first)  # fails and opens the breaker
        assert w.breaker.state == "open"
        await w.fulfiller.handle_order_created(second)
        assert w.provider.calls == [str(first.orderId)]
        waiting = w.stored(second.orderId)
        assert (waiting.status, waiting.attempts, waiting.failure_reason) == (Status.Pending, 0, None)
        assert waiting.next_attempt_at > T0 + timedelta(seconds=59)  # when the breaker may let a call through
        assert w.history(second.orderId) == [(FulfillmentStatus.Pending, 0, 0)]  # waiting, not failed

    run(scenario, FakeShippingProvider(ProviderError("503")), breaker_threshold=1)


def test_a_redelivered_order_that_shipped_calls_nothing_and_reports_its_state_again(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        stored, shipped = w.stored(event.orderId), w.events(event.orderId)[-1]
        await w.fulfiller.handle_order_created(event)  # redelivered, or published again by the Order Service
        assert (w.provider.calls, w.provider.lookups) == ([str(event.orderId)], [])
        assert w.stored(event.orderId) == stored
        again = w.events(event.orderId)[-1]
        assert again.eventId != shipped.eventId
        same_report = {"eventId", "timestamp"}
        assert again.model_dump(exclude=same_report) == shipped.model_dump(exclude=same_report)
        assert len(w.events(event.orderId)) == 3  # Pending, Shipped, Shipped again
        assert w.sample("fulfillment_outcomes_total", status="Shipped") == 1  # one outcome, reported twice

    run(scenario, FakeShippingProvider())


def test_a_redelivered_unfinished_order_records_the_shipment_the_provider_already_made(run):
    async def scenario(w: World) -> None:
        # Picked up, the provider shipped it, and the process died before recording that.
        event = order_created()
        await w.uow.add(pick_up(event.orderId, event.timestamp, T0, T0 + LEASE))
        shipment = w.provider.shipped_already(str(event.orderId))
        w.clock.advance(timedelta(seconds=5))
        await w.fulfiller.handle_order_created(event)
        assert (w.provider.lookups, w.provider.calls) == ([str(event.orderId)], [])
        shipped = w.stored(event.orderId)
        assert (shipped.status, shipped.tracking_number, shipped.attempts) == (
            Status.Shipped,
            shipment.tracking_number,
            1,
        )
        assert w.history(event.orderId) == [(FulfillmentStatus.Pending, 0, 0), (FulfillmentStatus.Shipped, 1, 1)]

    run(scenario, FakeShippingProvider())


def test_a_retry_looks_up_a_shipment_made_by_a_call_that_answered_too_late(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)  # the call times out...
        shipment = w.provider.shipped_already(str(event.orderId))  # ...but the provider did ship
        w.clock.advance(RETRY_DELAY)
        await w.retry_due()
        assert w.provider.calls == [str(event.orderId)]  # no second call
        shipped = w.stored(event.orderId)
        assert (shipped.status, shipped.tracking_number, shipped.attempts) == (
            Status.Shipped,
            shipment.tracking_number,
            1,
        )
        assert [e.trackingNumber for e in w.events(event.orderId)] == [None, shipment.tracking_number]

    run(scenario, FakeShippingProvider(HANG), timeout=0.05)


def test_an_outcome_another_worker_recorded_first_is_not_reported_again(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        # A second worker attempts the order from a snapshot taken before it shipped.
        stale = pick_up(event.orderId, event.timestamp, T0, T0 + LEASE).fulfillment
        await w.fulfiller.attempt(stale)
        assert w.provider.calls == [str(event.orderId)]
        assert w.history(event.orderId) == [(FulfillmentStatus.Pending, 0, 0), (FulfillmentStatus.Shipped, 1, 1)]
        assert w.fulfiller.shipped == 1

    run(scenario, FakeShippingProvider())


def test_an_order_being_attempted_here_is_not_attempted_twice(run):
    gate = Gate()

    async def scenario(w: World) -> None:
        event = order_created()
        first = asyncio.create_task(w.fulfiller.handle_order_created(event))
        await gate.entered.wait()
        await w.fulfiller.handle_order_created(event)  # redelivered while the call runs: returns at once
        w.clock.advance(LEASE)
        assert await w.retry_due() == []  # due by its lease, but busy here
        gate.open()
        await first
        assert w.provider.calls == [str(event.orderId)]
        assert w.stored(event.orderId).status is Status.Shipped

    run(scenario, FakeShippingProvider(gate))


def test_a_shipped_order_is_delivered_once_when_delivery_is_simulated(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)
        assert w.stored(event.orderId).deliver_at == T0 + timedelta(seconds=5)
        assert await w.uow.due_for_delivery(10) == []
        w.clock.advance(timedelta(seconds=5))
        (due,) = await w.uow.due_for_delivery(10)
        await w.fulfiller.deliver(due)
        await w.fulfiller.deliver(due)  # a second worker with the same snapshot: nothing more
        delivered = w.stored(event.orderId)
        assert (delivered.status, delivered.sequence, delivered.deliver_at) == (Status.Delivered, 2, None)
        assert w.history(event.orderId) == [
            (FulfillmentStatus.Pending, 0, 0),
            (FulfillmentStatus.Shipped, 1, 1),
            (FulfillmentStatus.Delivered, 2, 1),
        ]
        shipped, reported = w.events(event.orderId)[1:]
        assert (reported.trackingNumber, reported.carrier, reported.estimatedDelivery) == (
            shipped.trackingNumber,
            shipped.carrier,
            shipped.estimatedDelivery,
        )
        assert await w.uow.due_for_delivery(10) == []

    run(scenario, FakeShippingProvider(), delivery_after=5)


def test_the_unit_of_work_tells_new_rows_from_changes(run):
    async def scenario(w: World) -> None:
        new = pick_up(uuid.uuid4(), T0, T0, T0 + LEASE)
        with pytest.raises(ValueError):
            await w.uow.apply(new)
        stored, created = await w.uow.add(new)
        assert (stored, created) == (new.fulfillment, True)
        again, created = await w.uow.add(pick_up(new.fulfillment.order_id, T0, T0 + LEASE, T0 + 2 * LEASE))
        assert (again, created) == (new.fulfillment, False)  # the existing one, untouched
        with pytest.raises(ValueError):
            await w.uow.add(new.fulfillment.wait_for_breaker(T0))

    run(scenario, FakeShippingProvider())


def test_a_probe_that_fails_with_anything_releases_the_breaker(run):
    """The half-open probe's call fails with an error that is not the provider's (its ledger's disk is
    full): the probe slot is released, so once the provider works again orders ship without a restart."""

    async def scenario(w: World) -> None:
        w.breaker.record_failure()  # threshold 1: open
        w.breaker.reset_seconds = 0.0  # half-open at once
        first = order_created()
        with pytest.raises(OSError):
            await w.fulfiller.handle_order_created(first)
        assert w.breaker.state is not BreakerState.closed
        second = order_created()
        await w.fulfiller.handle_order_created(second)
        assert w.stored(second.orderId).status is Status.Shipped
        assert w.breaker.state is BreakerState.closed

    run(scenario, FakeShippingProvider(OSError(28, "No space left on device")), breaker_threshold=1)


def test_an_order_whose_call_fails_with_anything_is_due_again_with_the_breaker_not_after_its_lease(run):
    """The provider's ledger is full: the call raises, no attempt is counted, and the order is due again when the
    breaker lets the next call through, so it ships once the ledger has space instead of a call lease later."""

    async def scenario(w: World) -> None:
        order = order_created()
        with pytest.raises(OSError):
            await w.fulfiller.handle_order_created(order)
        waiting = w.stored(order.orderId)
        assert (waiting.status, waiting.attempts) == (Status.Pending, 0)
        assert waiting.next_attempt_at < T0 + timedelta(seconds=2)  # the breaker's retry time, not T0 + lease
        w.clock.advance(timedelta(seconds=2))
        assert [f.order_id for f in await w.retry_due()] == [order.orderId]
        assert w.stored(order.orderId).status is Status.Shipped
        assert w.provider.lookups == [str(order.orderId)]  # the retry asked whether it had shipped first

    run(scenario, FakeShippingProvider(OSError(28, "No space left on device")))


def test_each_state_change_is_one_info_line_naming_the_order(run):
    async def scenario(w: World) -> None:
        event = order_created()
        with json_lines("fulfillment_service.use_cases") as lines:
            await w.fulfiller.handle_order_created(event)  # fails, a retry is scheduled
            w.clock.advance(RETRY_DELAY)
            await w.retry_due()  # ships
            await w.fulfiller.handle_order_created(event)  # redelivered: changes nothing
        info = lines.at("info")
        assert [line["event"] for line in info] == ["fulfillment picked up", "retry scheduled", "order shipped"]
        assert {line["orderId"] for line in lines.all()} == {str(event.orderId)}
        retry, shipped = info[1], info[2]
        assert (retry["attempts"], retry["reason"], retry["retryInSeconds"]) == (1, "503 Unavailable", 1.0)
        assert shipped["trackingNumber"] == w.stored(event.orderId).tracking_number
        assert shipped["status"] == "Shipped"

    run(scenario, FakeShippingProvider(ProviderError("503 Unavailable")))


def test_a_failed_order_is_one_info_line_with_its_reason(run):
    async def scenario(w: World) -> None:
        event = order_created()
        with json_lines("fulfillment_service.use_cases") as lines:
            await w.fulfiller.handle_order_created(event)
        (picked_up, failed) = lines.at("info")
        assert (picked_up["event"], failed["event"]) == ("fulfillment picked up", "order failed")
        assert failed["reason"] == "gave up after 1 attempt(s): 503 Unavailable"
        assert failed["orderId"] == str(event.orderId)

    run(scenario, FakeShippingProvider(ProviderError("503 Unavailable")), max_attempts=1)


def test_a_shipment_made_for_an_order_another_worker_failed_meanwhile_is_a_warning(run):
    gate = Gate()

    async def scenario(w: World) -> None:
        event = order_created()
        with json_lines("fulfillment_service.use_cases") as lines:
            call = asyncio.create_task(w.fulfiller.handle_order_created(event))
            await gate.entered.wait()  # the call is under way, and held
            # Another worker gives up on the order meanwhile.
            await w.uow.decide(event.orderId, lambda f: None if f is None else f.fail(3, "503", T0))
            gate.open()
            await call
        assert w.stored(event.orderId).status is Status.Failed  # the shipment did not overwrite it
        (warning,) = lines.at("warning")
        shipment = w.provider.shipments[str(event.orderId)]
        assert warning["event"] == "the provider shipped the order, but the order is recorded as Failed"
        assert (warning["orderId"], warning["trackingNumber"]) == (str(event.orderId), shipment.tracking_number)

    run(scenario, FakeShippingProvider(gate))


def test_a_decision_the_store_refuses_records_nothing_and_is_a_warning(run):
    async def scenario(w: World) -> None:
        event = order_created()
        await w.fulfiller.handle_order_created(event)  # shipped
        # A decision made from a stale snapshot (Pending) of the order, whatever the row holds now.
        stale = pick_up(event.orderId, event.timestamp, T0, T0 + LEASE).fulfillment
        with json_lines("fulfillment_service.unit_of_work") as lines:
            stored, recorded = await w.uow.decide(event.orderId, lambda _: stale.fail(3, "503", T0))
        assert not recorded and stored is not None and stored.status is Status.Shipped
        assert w.stored(event.orderId).status is Status.Shipped
        (warning,) = lines.at("warning")
        assert warning["event"] == "a change to Failed was not recorded: the order's row changed while it was decided"
        assert (warning["orderId"], warning["status"]) == (str(event.orderId), "Shipped")

    run(scenario, FakeShippingProvider())


PARIS = Destination("Marie Curie", ("36 Quai de Bethune",), "Paris", "75004", "FR")


def address_of(destination: Destination) -> ShippingAddress:
    return ShippingAddress(
        recipientName=destination.recipient_name,
        addressLines=list(destination.address_lines),
        city=destination.city,
        postalCode=destination.postal_code,
        country=destination.country,
    )


def test_the_provider_ships_to_the_orders_address_on_every_call(run):
    async def scenario(w: World) -> None:
        event = sample_order_created(timestamp=T0 - timedelta(seconds=1), shippingAddress=address_of(PARIS))
        check_order_created(event)  # an event the Order Service could have written
        await w.fulfiller.handle_order_created(event)
        assert w.provider.destinations == [PARIS]
        assert w.stored(event.orderId).destination == PARIS  # kept for the retries, across restarts

        w.clock.advance(RETRY_DELAY)
        assert len(await w.retry_due()) == 1
        assert w.provider.destinations == [PARIS, PARIS]
        assert w.stored(event.orderId).status is Status.Shipped

    run(scenario, FakeShippingProvider(ProviderError("503")))


def test_an_order_without_an_address_is_shipped_without_a_destination(run):
    async def scenario(w: World) -> None:
        event = order_created()
        assert event.shippingAddress is None  # as every v1 writer's record reads
        await w.fulfiller.handle_order_created(event)
        assert w.provider.destinations == [None]
        stored = w.stored(event.orderId)
        assert (stored.status, stored.destination) == (Status.Shipped, None)

    run(scenario, FakeShippingProvider())
