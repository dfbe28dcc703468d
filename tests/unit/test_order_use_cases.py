"""The order use cases and the fulfillment projection with the real unit of work on a temporary SQLite
database: what is returned, what is stored (in the columns' units), and which events go to the outbox."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine, func, select

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged, OrderCreated
from contracts.order_rules import OrderLine, ValidOrder
from messaging.avro_codec import RegistrationCheck
from observability.logs import order_context
from observability.metrics import Metrics
from order_service import store
from order_service.api.representation import order_document
from order_service.domain import Order, OrderStatus
from order_service.errors import (
    EventSchemaRefused,
    EventTooLarge,
    IdempotencyKeyReused,
    InvalidCursor,
    OrderNotFound,
)
from order_service.projection import FulfillmentProjection
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import SqlOrderUnitOfWork
from order_service.use_cases import OrderService
from persistence.engine import make_engine
from persistence.migrations import upgrade_to_head
from tests.unit.log_capture import json_lines
from tests.unit.manual_clock import ManualClock

MIGRATIONS = Path(__file__).resolve().parents[2] / "order_service" / "migrations"
TOPIC = "order-events"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T0_MICROS = 1_740_830_400_000_000  # T0 in the orders table's unit
TTL = timedelta(days=1)
ETA = datetime(2030, 1, 2, 12, 30, 0, 123_000, tzinfo=UTC)  # timestamp-millis: whole milliseconds


@dataclass
class World:
    service: OrderService
    projection: FulfillmentProjection
    waiter: StatusWaiter
    clock: ManualClock
    engine: Engine
    wakes: list[None] = field(default_factory=list)
    changed: list[list[uuid.UUID]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def events(self) -> list[OrderCreated]:
        """The events in the outbox, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(store.outbox).order_by(store.outbox.c.id)).mappings().all()
        assert all((r["topic"], r["event_type"]) == (TOPIC, "OrderCreated") for r in rows)
        assert all(r["key"] == r["payload"].split('"orderId":"')[1][:36] for r in rows)  # keyed by order id
        return [OrderCreated.model_validate_json(r["payload"]) for r in rows]

    def count_orders(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(store.orders)).scalar_one()

    def columns(self, order_id: uuid.UUID) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(store.orders).where(store.orders.c.order_id == str(order_id))).mappings().one()
        return dict(row)

    async def apply(self, *events: FulfillmentStatusChanged) -> None:
        """Hand events to the projection as the consumer does: one batch, on another thread."""
        await asyncio.to_thread(self.projection, list(events))


def request(customer: str = "c-1", price: str = "19.99", quantity: int = 2) -> ValidOrder:
    return ValidOrder(
        customer_id=customer,
        customer_name="Ada Lovelace",
        lines=(OrderLine("p-1", "Lamp", quantity, Decimal(price)),),
        total=Decimal(price) * quantity,
    )


def status_changed(order_id: uuid.UUID, status: FulfillmentStatus, sequence: int, **fields) -> FulfillmentStatusChanged:
    return FulfillmentStatusChanged(
        eventId=uuid.uuid4(), orderId=order_id, status=status, sequence=sequence, timestamp=T0, **fields
    )


Scenario = Callable[[World], Awaitable[None]]


@pytest.fixture
def run(tmp_path) -> Iterator[Callable[..., None]]:
    """run(scenario, **options) runs scenario against a fresh service and database."""
    engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
    upgrade_to_head(engine, MIGRATIONS)

    def go(
        scenario: Scenario,
        *,
        max_event_bytes: int = 990_000,
        recheck_seconds: float = 1.0,
        schema_refusal: Callable[[], Any] = lambda: None,
    ) -> None:
        async def main() -> None:
            clock = ManualClock(T0)
            metrics = Metrics()
            wakes: list[None] = []
            changed: list[list[uuid.UUID]] = []
            uow = SqlOrderUnitOfWork(engine, TOPIC, lambda: wakes.append(None))
            waiter = StatusWaiter(uow.get_many, recheck_seconds=recheck_seconds)
            waiter.bind(asyncio.get_running_loop())
            service = OrderService(
                uow,
                waiter,
                int(TTL.total_seconds()),
                max_event_bytes=max_event_bytes,
                schema_refusal=schema_refusal,
                retry_after_seconds=30,
                clock=clock,
                metrics=metrics,
            )

            def on_changed(order_ids: list[uuid.UUID]) -> None:
                changed.append(order_ids)
                waiter.notify_threadsafe(order_ids)

            projection = FulfillmentProjection(uow, on_changed, clock)
            try:
                await scenario(World(service, projection, waiter, clock, engine, wakes, changed, metrics))
            finally:
                await uow.stop()

        asyncio.run(main())

    yield go
    engine.dispose()


def test_a_new_order_is_stored_with_its_event_in_the_columns_units(run):
    async def scenario(w: World) -> None:
        order, replayed = await w.service.place(request(), None)
        assert replayed is False
        assert (order.status, order.created_at, order.updated_at, order.total) == (
            OrderStatus.Pending,
            T0,
            T0,
            Decimal("39.98"),
        )
        assert order.lines == (OrderLine("p-1", "Lamp", 2, Decimal("19.99")),)
        assert await w.service.get(order.order_id) == order  # the store gives back what was accepted
        columns = w.columns(order.order_id)
        assert (columns["created_at"], columns["updated_at"], columns["fulfillment_seq"]) == (T0_MICROS, T0_MICROS, -1)
        assert (columns["total_amount"], columns["status"], columns["estimated_delivery"]) == ("39.98", "Pending", None)
        assert columns["items"] == '[{"productId":"p-1","productName":"Lamp","quantity":2,"price":"19.99"}]'
        (event,) = w.events()
        assert (event.orderId, event.timestamp, event.customerId, event.totalAmount) == (
            order.order_id,
            T0,
            "c-1",
            Decimal("39.98"),
        )
        assert [(i.productId, i.quantity, i.price) for i in event.items] == [("p-1", 2, Decimal("19.99"))]
        assert len(w.wakes) == 1  # the relay is told at once

    run(scenario)


def test_the_same_key_with_the_same_order_replays_it_and_stores_nothing(run):
    async def scenario(w: World) -> None:
        first, replayed = await w.service.place(request(), "key-1")
        assert replayed is False
        w.clock.advance(timedelta(hours=23))
        again, replayed = await w.service.place(request(), "key-1")
        assert (again, replayed) == (first, True)
        assert (w.count_orders(), len(w.events()), len(w.wakes)) == (1, 1, 1)
        other, replayed = await w.service.place(request(), "key-2")
        assert (other.order_id != first.order_id, replayed, w.count_orders()) == (True, False, 2)
        assert w.metrics.sample("orders_created_total") == 2  # the replay created nothing

    run(scenario)


def test_the_same_key_with_another_order_is_refused(run):
    async def scenario(w: World) -> None:
        await w.service.place(request(), "key-1")
        with pytest.raises(IdempotencyKeyReused):
            await w.service.place(request(price="20.00"), "key-1")
        assert (w.count_orders(), len(w.events())) == (1, 1)

    run(scenario)


def test_a_request_racing_another_with_its_key_fails_none_of_the_orders_committed_with_it(run):
    async def scenario(w: World) -> None:
        with json_lines("persistence.group_commit") as lines:
            results = await asyncio.gather(
                *[w.service.place(request(customer=f"c-{n}"), f"key-new-{n}") for n in range(20)],
                w.service.place(request(), "key-race"),
                w.service.place(request(), "key-race"),
                *[w.service.place(request(customer=f"c-{n}"), f"key-more-{n}") for n in range(20)],
            )
        (first, first_replayed), (second, second_replayed) = results[20:22]
        assert first == second and sorted([first_replayed, second_replayed]) == [False, True]
        assert all(replayed is False for _, replayed in results[:20] + results[22:])
        assert (w.count_orders(), len(w.events())) == (41, 41)
        assert lines.all() == []  # no shared commit failed and was retried one by one

    run(scenario)


def test_expired_keys_are_purged_and_then_free_for_a_new_order(run):
    async def scenario(w: World) -> None:
        first, _ = await w.service.place(request(), "key-1")
        assert await w.service.purge_expired_keys() == 0
        w.clock.advance(TTL + timedelta(seconds=1))
        assert await w.service.purge_expired_keys() == 1
        second, replayed = await w.service.place(request(), "key-1")
        assert (second.order_id != first.order_id, replayed, second.created_at) == (True, False, w.clock.now)

    run(scenario)


def test_an_order_whose_event_would_not_fit_the_stream_is_not_accepted(run):
    large = ValidOrder("c-1", "Ada", tuple(OrderLine(f"p-{n}", "n" * 150, 1, Decimal(1)) for n in range(3)), Decimal(3))

    async def scenario(w: World) -> None:
        with pytest.raises(EventTooLarge) as refused:
            await w.service.place(large, "key-1")
        assert (refused.value.limit, refused.value.size > 450) == (200, True)
        assert (w.count_orders(), w.events(), w.wakes) == (0, [], [])
        _, replayed = await w.service.place(request(), "key-1")  # the key was not taken
        assert (replayed, w.count_orders()) == (False, 1)

    run(scenario, max_event_bytes=200)


def test_while_the_registry_refuses_the_event_schema_no_order_is_stored_but_replays_are_answered(run):
    refusal: list[RegistrationCheck] = []

    async def scenario(w: World) -> None:
        first, _ = await w.service.place(request(), "key-1")
        refusal.append(
            RegistrationCheck("refused", "order-events-value", 0.0, detail="409 incompatible", fields=("customerName",))
        )
        with pytest.raises(EventSchemaRefused) as refused:
            await w.service.place(request(customer="c-2"), "key-2")
        assert (refused.value.fields, refused.value.retry_after_seconds) == (("customerName",), 30)
        assert (w.count_orders(), len(w.events())) == (1, 1)  # nothing stored that could not be published
        replay, replayed = await w.service.place(request(), "key-1")  # stored before: still answered
        assert (replay.order_id, replayed) == (first.order_id, True)
        refusal.clear()  # the registry accepts the schema again
        await w.service.place(request(customer="c-2"), "key-2")
        assert w.count_orders() == 2

    run(scenario, schema_refusal=lambda: refusal[0] if refusal else None)


def test_an_unknown_order_is_not_found(run):
    async def scenario(w: World) -> None:
        missing = uuid.uuid4()
        with pytest.raises(OrderNotFound) as not_found:
            await w.service.get(missing)
        assert not_found.value.order_id == missing

    run(scenario)


def test_pages_run_newest_first_and_cursors_keep_their_format(run):
    async def scenario(w: World) -> None:
        placed: list[Order] = []
        for n in range(5):
            placed.append((await w.service.place(request(customer="c-1" if n != 2 else "c-2"), None))[0])
            if n != 3:  # the fourth and fifth share a creation time: the order id breaks the tie
                w.clock.advance(timedelta(microseconds=1))
        newest_first = sorted(placed, key=lambda o: (o.created_at, str(o.order_id)), reverse=True)

        seen: list[Order] = []
        cursor = None
        while True:
            page = await w.service.list_orders(None, None, 2, cursor)
            seen += page.orders
            if page.next_cursor is None:
                break
            last = page.orders[-1]
            micros = (last.created_at - T0) // timedelta(microseconds=1) + T0_MICROS
            assert page.next_cursor == base64.urlsafe_b64encode(f"{micros}:{last.order_id}".encode()).decode().rstrip(
                "="
            )
            cursor = page.next_cursor
        assert seen == newest_first

        of_c1 = await w.service.list_orders("c-1", OrderStatus.Pending, 10, None)
        assert (of_c1.orders, of_c1.next_cursor) == ([o for o in newest_first if o.customer_id == "c-1"], None)
        assert (await w.service.list_orders(None, OrderStatus.Fulfilled, 10, None)).orders == []
        for cursor in ("not-a-cursor", base64.urlsafe_b64encode(b"12:not-an-id").decode()):
            with pytest.raises(InvalidCursor):
                await w.service.list_orders(None, None, 2, cursor)

    run(scenario)


def test_a_page_of_large_orders_ends_early_with_a_cursor_and_misses_none(run):
    async def scenario(w: World) -> None:
        line = OrderLine("p-1", "x" * 200, 1, Decimal("1.00"))
        large = ValidOrder("c-1", "Ada", (line,) * 1000, Decimal("1000.00"))  # about 250,000 stored characters
        placed = []
        for _ in range(9):
            placed.append((await w.service.place(large, None))[0])
            w.clock.advance(timedelta(microseconds=1))
        placed.append((await w.service.place(request(), None))[0])

        sizes, seen, cursor = [], [], None
        while True:
            page = await w.service.list_orders(None, None, 100, cursor)
            sizes.append(len(page.orders))
            seen += page.orders
            cursor = page.next_cursor
            if cursor is None:
                break
        # Every page within the budget (at least one order each), together every order once, newest first.
        assert max(sizes) * 250_000 <= store.PAGE_BUDGET_CHARACTERS + 250_000 and min(sizes) >= 1
        assert len(sizes) > 1
        assert [o.order_id for o in seen] == [o.order_id for o in reversed(placed)]

    run(scenario)


def test_the_order_follows_its_fulfillment_once_per_event_and_never_back(run):
    async def scenario(w: World) -> None:
        order, _ = await w.service.place(request(), None)
        shipped_at = T0 + timedelta(seconds=3)
        w.clock.now = shipped_at
        shipped = status_changed(
            order.order_id, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1", carrier="MockCarrier",
            estimatedDelivery=ETA,
        )  # fmt: skip
        await w.apply(
            status_changed(order.order_id, FulfillmentStatus.Pending, 0),
            shipped,
            status_changed(uuid.uuid4(), FulfillmentStatus.Pending, 0),  # not an order of this service
        )
        fulfilled = await w.service.get(order.order_id)
        assert (fulfilled.status, fulfilled.updated_at, fulfilled.created_at) == (OrderStatus.Fulfilled, shipped_at, T0)
        view = fulfilled.fulfillment
        assert (view.sequence, view.tracking_number, view.carrier, view.estimated_delivery) == (
            1,
            "SHIP-1",
            "MockCarrier",
            ETA,
        )
        assert w.columns(order.order_id)["estimated_delivery"] == 1_893_587_400_123  # epoch ms
        assert w.changed == [[order.order_id]]

        w.clock.advance(timedelta(seconds=1))
        late = status_changed(order.order_id, FulfillmentStatus.Failed, 1, reason="late and contradicting")
        await w.apply(shipped, status_changed(order.order_id, FulfillmentStatus.Pending, 0), late)
        assert await w.service.get(order.order_id) == fulfilled  # not even updated_at moved
        assert w.changed == [[order.order_id]]

    run(scenario)


def test_a_waiting_read_returns_when_the_status_arrives_or_the_time_is_up(run):
    async def scenario(w: World) -> None:
        order, _ = await w.service.place(request(), None)
        unchanged = await w.service.get(order.order_id, {OrderStatus.Fulfilled}, timeout_seconds=0.05)
        assert unchanged.status is OrderStatus.Pending
        assert w.metrics.sample("order_long_polls_waiting") == 0  # the wait above is over
        waiting = asyncio.create_task(w.service.get(order.order_id, {OrderStatus.Fulfilled, OrderStatus.Failed}, 30))
        await _until_waiting(w)
        assert w.metrics.sample("order_long_polls_waiting") == 1
        await w.apply(status_changed(order.order_id, FulfillmentStatus.Failed, 1, reason="address unknown"))
        failed = await asyncio.wait_for(waiting, 30)
        assert (failed.status, failed.fulfillment.failure_reason) == (OrderStatus.Failed, "address unknown")
        assert w.metrics.sample("order_long_polls_waiting") == 0

    run(scenario)


def test_the_api_representation_of_a_stored_order(run):
    async def scenario(w: World) -> None:
        order, _ = await w.service.place(request(price="0.10", quantity=3), None)
        w.clock.advance(timedelta(microseconds=250))
        await w.apply(
            status_changed(
                order.order_id, FulfillmentStatus.Shipped, 1, trackingNumber="S", carrier="C", estimatedDelivery=ETA
            )
        )
        document = order_document(await w.service.get(order.order_id))
        expected = {
            "orderId": str(order.order_id),
            "customerId": "c-1",
            "customerName": "Ada Lovelace",
            "items": [{"productId": "p-1", "productName": "Lamp", "quantity": 3, "price": Decimal("0.10")}],
            "totalAmount": Decimal("0.30"),
            "status": "Fulfilled",
            "createdAt": "2025-03-01T12:00:00Z",
            "updatedAt": "2025-03-01T12:00:00.000250Z",
            "trackingNumber": "S",
            "carrier": "C",
            "estimatedDelivery": "2030-01-02T12:30:00.123000Z",
            "failureReason": None,
            "shippingAddress": None,
            "cancellation": None,
        }
        assert list(document.items()) == list(expected.items())  # the fields in the contract's order, too
        assert str(document["totalAmount"]) == "0.30"  # exact, at the contract's scale

    run(scenario)


async def _until_waiting(w: World, seconds: float = 5.0) -> None:
    """Return once a request waits for a change (polled with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not w.waiter.waiting:
        assert loop.time() < deadline, "no request started waiting"
        await asyncio.sleep(0.001)


def test_a_long_poll_returns_when_this_instance_applies_the_status(run):
    async def scenario(w: World) -> None:
        order, _ = await w.service.place(request(), None)
        waiting = asyncio.create_task(w.service.get(order.order_id, {OrderStatus.Fulfilled}, 30))
        await _until_waiting(w)
        await w.apply(status_changed(order.order_id, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1"))
        found = await asyncio.wait_for(waiting, 5)  # woken by the projection, not by the 60 s re-read
        assert found.status is OrderStatus.Fulfilled

    run(scenario, recheck_seconds=60)


def test_a_long_poll_sees_another_replicas_change_and_returns_the_last_read_at_its_timeout(run):
    async def scenario(w: World) -> None:
        order, _ = await w.service.place(request(), None)
        other_replica = FulfillmentProjection(SqlOrderUnitOfWork(w.engine, TOPIC), clock=w.clock)  # wakes no one here
        waiting = asyncio.create_task(w.service.get(order.order_id, {OrderStatus.Fulfilled, OrderStatus.Failed}, 30))
        await _until_waiting(w)
        await asyncio.to_thread(other_replica, [status_changed(order.order_id, FulfillmentStatus.Failed, 1)])
        await w.apply(status_changed(order.order_id, FulfillmentStatus.Pending, 0))  # changes nothing: stale
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await asyncio.wait_for(waiting, 5)).status is OrderStatus.Failed  # found by the shared re-read
        assert loop.time() - started < 1.0

        second, _ = await w.service.place(request(), None)
        await asyncio.to_thread(other_replica, [status_changed(second.order_id, FulfillmentStatus.Pending, 0)])
        started = loop.time()
        processing = await w.service.get(second.order_id, {OrderStatus.Fulfilled}, 0.5)
        assert processing.status is OrderStatus.Processing  # as last read, not as first read
        assert 0.5 <= loop.time() - started < 1.0

    run(scenario, recheck_seconds=0.1)


def test_many_long_polls_share_one_read_and_keep_their_timeouts(tmp_path):
    async def main() -> None:
        engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
        upgrade_to_head(engine, MIGRATIONS)
        uow = SqlOrderUnitOfWork(engine, TOPIC)
        reads: list[int] = []

        async def counting_reader(order_ids):
            reads.append(len(order_ids))
            return await uow.get_many(order_ids)

        waiter = StatusWaiter(counting_reader, recheck_seconds=0.2)
        waiter.bind(asyncio.get_running_loop())
        service = OrderService(uow, waiter, 86_400)
        orders = [(await service.place(request(), None))[0] for _ in range(300)]
        loop = asyncio.get_running_loop()
        took: list[tuple[float, float]] = []

        async def poll(order: Order, timeout: float) -> Order:
            started = loop.time()
            found = await service.get(order.order_id, {OrderStatus.Fulfilled}, timeout)
            took.append((timeout, loop.time() - started))
            return found

        answered = await asyncio.gather(*(poll(order, 1.0 + n % 3) for n, order in enumerate(orders)))
        await uow.stop()
        engine.dispose()
        assert all(order.status is OrderStatus.Pending for order in answered)
        assert all(timeout <= seconds < timeout + 1.0 for timeout, seconds in took)  # honoured within a second
        assert waiter.waiting == 0
        # One shared read of every waited order per re-check (~15 in 3 s), not one per poll per re-check.
        assert len(reads) <= 20 and max(reads) <= 300

    asyncio.run(main())


def test_long_polls_arriving_together_read_their_orders_together_not_one_read_each(tmp_path):
    async def main() -> None:
        engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
        upgrade_to_head(engine, MIGRATIONS)
        uow = SqlOrderUnitOfWork(engine, TOPIC)
        shared: list[int] = []
        own_reads = 0
        plain_get = uow.get

        async def counted_get(order_id: uuid.UUID) -> Order | None:
            nonlocal own_reads
            own_reads += 1
            return await plain_get(order_id)

        async def shared_reader(order_ids):
            shared.append(len(order_ids))
            return await uow.get_many(order_ids)

        uow.get = counted_get  # type: ignore[method-assign]
        waiter = StatusWaiter(shared_reader, recheck_seconds=60)
        waiter.bind(asyncio.get_running_loop())
        service = OrderService(uow, waiter, 86_400)
        orders = [(await service.place(request(), None))[0] for _ in range(500)]
        answered = await asyncio.gather(*(service.get(o.order_id, {OrderStatus.Failed}, 0.3) for o in orders))
        assert [o.order_id for o in answered] == [o.order_id for o in orders]
        # 500 requests at once: their first reads are shared (a few batches), none reads on its own.
        assert own_reads == 0 and sum(shared) == 500 and len(shared) <= 10

        with pytest.raises(OrderNotFound):
            await service.get(uuid.uuid4(), {OrderStatus.Failed}, 0.3)  # not found by the shared read

        async def failing_reader(order_ids):
            raise OSError("database away")

        waiter._read_orders = failing_reader
        found = await service.get(orders[0].order_id, {OrderStatus.Failed}, 0.1)
        assert found.order_id == orders[0].order_id and own_reads == 1  # read on its own when the shared read fails
        await uow.stop()
        engine.dispose()

    asyncio.run(main())


def test_the_shared_reader_carries_no_request_s_order_or_span(tmp_path):
    """The reader serves every waiting request: the log fields and span of the request that happened to start it
    are not on its reads (nor on its log lines)."""

    async def main() -> None:
        engine = make_engine(f"sqlite:///{tmp_path}/orders.db")
        upgrade_to_head(engine, MIGRATIONS)
        uow = SqlOrderUnitOfWork(engine, TOPIC)
        seen: list[tuple[dict[str, Any], bool]] = []

        async def reader(order_ids):
            seen.append((structlog.contextvars.get_contextvars(), trace.get_current_span().get_span_context().is_valid))
            return await uow.get_many(order_ids)

        waiter = StatusWaiter(reader, recheck_seconds=0.1)
        waiter.bind(asyncio.get_running_loop())
        service = OrderService(uow, waiter, 86_400)
        first, _ = await service.place(request(), None)
        second, _ = await service.place(request(), None)
        tracer = TracerProvider().get_tracer(__name__)
        with tracer.start_as_current_span("GET /api/orders/{orderId}"), order_context(first.order_id):
            await asyncio.gather(
                service.get(first.order_id, {OrderStatus.Failed}, 0.3),
                service.get(second.order_id, {OrderStatus.Failed}, 0.3),
            )
        await uow.stop()
        engine.dispose()
        assert len(seen) >= 2  # the first reads and at least one re-check
        assert all(fields == {} and not in_span for fields, in_span in seen), seen

    asyncio.run(main())


def test_orders_without_progress_are_published_again_at_doubling_intervals(run, caplog):
    stale_after, cap = timedelta(seconds=60), timedelta(seconds=200)

    async def scenario(w: World) -> None:
        stuck, _ = await w.service.place(request(), None)
        finished, _ = await w.service.place(request(), None)
        moving, _ = await w.service.place(request(), None)
        await w.apply(status_changed(finished.order_id, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1"))
        with w.engine.begin() as conn:  # the relay published the three OrderCreated events
            conn.execute(store.outbox.delete())

        w.clock.advance(timedelta(seconds=59))
        await w.apply(status_changed(moving.order_id, FulfillmentStatus.Pending, 0))  # progress at T0+59s
        assert await w.service.republish_stale_orders(stale_after, cap) == 0  # none stale yet
        assert await w.service.stale_orders(stale_after) == (0, None)

        w.clock.advance(timedelta(seconds=2))
        assert await w.service.stale_orders(stale_after) == (1, timedelta(seconds=61))
        with caplog.at_level("WARNING", logger="order_service.use_cases"):
            assert await w.service.republish_stale_orders(stale_after, cap) == 1
            assert await w.service.republish_stale_orders(stale_after, cap) == 0
        # The operator reads it in the log: one line for the republication, none when nothing was due.
        assert [r.getMessage() for r in caplog.records] == [
            "published OrderCreated again for 1 order(s) without fulfillment progress for 60 s"
        ]
        again = w.events()
        assert [e.orderId for e in again] == [stuck.order_id]  # only the order without progress
        assert again[0].model_dump(exclude={"eventId"}) == w.events()[0].model_dump(exclude={"eventId"})
        await w.apply(status_changed(moving.order_id, FulfillmentStatus.Failed, 1, reason="out of stock"))

        published_at = []
        for _ in range(5):  # each republication published, then the next one due after 60, 120, 200, 200 s
            with w.engine.begin() as conn:
                conn.execute(store.outbox.delete())
            started = w.clock.now
            while await w.service.republish_stale_orders(stale_after, cap) == 0:
                w.clock.advance(timedelta(seconds=1))
            published_at.append(w.clock.now - started)
        assert published_at == [timedelta(seconds=s) for s in (60, 120, 200, 200, 200)]
        assert [e.orderId for e in w.events()] == [stuck.order_id]
        assert (await w.service.stale_orders(stale_after))[0] == 1

    run(scenario)


def test_an_accepted_order_is_one_info_line_and_a_replay_none(run):
    async def scenario(w: World) -> None:
        with json_lines("order_service.use_cases") as lines:
            order, _ = await w.service.place(request(), "key-1")
            await w.service.place(request(), "key-1")
        (accepted,) = lines.at("info")
        assert accepted["event"] == "order accepted"
        assert (accepted["orderId"], accepted["status"]) == (str(order.order_id), "Pending")
        (replayed,) = lines.at("debug")
        assert replayed["orderId"] == str(order.order_id)

    run(scenario)
