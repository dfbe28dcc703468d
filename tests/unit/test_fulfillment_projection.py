"""The fulfillment projection with a fake unit of work: one batch is one call (one transaction), the order
follows its fulfillment once per event and never back, the waiter hears of a change only after it was written,
and a failed write changes nothing and notifies no one, so the consumer hands the batch over again."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged
from messaging.consumer.tracing import reset_batch_spans, set_batch_spans
from order_service.domain import NOT_STARTED, FulfillmentView, OrderStatus
from order_service.projection import FulfillmentProjection
from order_service.unit_of_work import FulfillmentChange
from tests.unit.log_capture import json_lines

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
ETA = datetime(2030, 1, 2, 12, 30, tzinfo=UTC)


class FakeUnitOfWork:
    """Orders' fulfillment views in a dict; each change_fulfillments call is one transaction, recorded as
    (order ids asked for, views written, now). fail: the next call raises it, writing nothing."""

    def __init__(self, views: dict[uuid.UUID, FulfillmentView]) -> None:
        self.views = views
        self.transactions: list[tuple[set[uuid.UUID], dict[uuid.UUID, FulfillmentView], datetime]] = []
        self.fail: Exception | None = None

    def change_fulfillments(
        self, order_ids: Collection[uuid.UUID], change: FulfillmentChange, now: datetime
    ) -> list[uuid.UUID]:
        if self.fail is not None:
            raise self.fail
        current: Mapping[uuid.UUID, FulfillmentView] = {i: self.views[i] for i in order_ids if i in self.views}
        written = dict(change(current))
        self.views.update(written)
        self.transactions.append((set(order_ids), written, now))
        return list(written)


def event(order_id: uuid.UUID, status: FulfillmentStatus, sequence: int, **fields) -> FulfillmentStatusChanged:
    return FulfillmentStatusChanged(
        eventId=uuid.uuid4(), orderId=order_id, status=status, sequence=sequence, timestamp=NOW, **fields
    )


@pytest.fixture
def orders() -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.uuid4(), uuid.uuid4()


def projection_over(uow: FakeUnitOfWork, notified: list[list[uuid.UUID]]) -> FulfillmentProjection:
    def on_changed(order_ids: list[uuid.UUID]) -> None:
        assert uow.transactions, "notified before the change was written"
        notified.append(order_ids)

    return FulfillmentProjection(uow, on_changed, clock=lambda: NOW)


def test_a_batch_is_one_transaction_and_each_order_follows_its_fulfillment(orders) -> None:
    first, second = orders
    unknown = uuid.uuid4()
    uow = FakeUnitOfWork({first: NOT_STARTED, second: NOT_STARTED})
    notified: list[list[uuid.UUID]] = []

    projection_over(uow, notified)(
        [
            event(second, FulfillmentStatus.Pending, 0),
            event(first, FulfillmentStatus.Pending, 0),
            event(unknown, FulfillmentStatus.Pending, 0),  # not an order of this service: skipped
            event(second, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1", carrier="Mock", estimatedDelivery=ETA),
        ]
    )

    ((asked, written, now),) = uow.transactions
    assert (asked, now) == ({first, second, unknown}, NOW)
    assert list(written) == [second, first]  # in the order they first changed
    assert written[second] == FulfillmentView(OrderStatus.Fulfilled, 1, "SHIP-1", "Mock", ETA, None)
    assert written[first] == FulfillmentView(OrderStatus.Processing, 0)
    assert notified == [[second, first]]


def test_redelivered_and_late_events_write_nothing_and_wake_no_one(orders) -> None:
    first, _ = orders
    shipped = FulfillmentView(OrderStatus.Fulfilled, 1, "SHIP-1", "Mock", ETA, None)
    uow = FakeUnitOfWork({first: shipped})
    notified: list[list[uuid.UUID]] = []

    projection_over(uow, notified)(
        [
            event(first, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1"),  # redelivered
            event(first, FulfillmentStatus.Pending, 0),  # late
            event(first, FulfillmentStatus.Failed, 2, reason="contradicts a terminal status"),
        ]
    )

    assert [written for _asked, written, _now in uow.transactions] == [{}]
    assert uow.views[first] == shipped
    assert notified == []


def test_a_failed_write_raises_so_the_batch_is_handled_again_and_no_one_is_woken(orders) -> None:
    first, _ = orders
    uow = FakeUnitOfWork({first: NOT_STARTED})
    uow.fail = OSError("disk full")
    notified: list[list[uuid.UUID]] = []
    projection = projection_over(uow, notified)
    batch = [event(first, FulfillmentStatus.Pending, 0)]

    with pytest.raises(OSError):
        projection(batch)
    assert (uow.views[first], notified) == (NOT_STARTED, [])

    uow.fail = None
    projection(batch)  # handled again: applied once
    assert (uow.views[first].status, notified) == (OrderStatus.Processing, [[first]])


def test_an_empty_batch_opens_no_transaction() -> None:
    uow = FakeUnitOfWork({})
    projection_over(uow, [])([])
    assert uow.transactions == []


def test_each_order_whose_status_changed_is_one_info_line_after_the_commit(orders) -> None:
    first, second = orders
    uow = FakeUnitOfWork({first: NOT_STARTED, second: NOT_STARTED})
    with json_lines("order_service.projection") as lines:
        projection_over(uow, [])(
            [
                event(first, FulfillmentStatus.Pending, 0),
                event(first, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1", carrier="C"),
                event(second, FulfillmentStatus.Pending, 0),
                event(second, FulfillmentStatus.Pending, 0),  # redelivered: changes nothing
            ]
        )
        uow.fail = RuntimeError("database away")
        with pytest.raises(RuntimeError):
            projection_over(uow, [])([event(second, FulfillmentStatus.Failed, 1, reason="gave up")])
    applied = [(line["orderId"], line["status"]) for line in lines.at("info")]
    assert applied == [(str(first), "Fulfilled"), (str(second), "Processing")]


def test_each_line_is_in_the_trace_of_the_event_that_set_the_status(orders) -> None:
    first, second = orders
    uow = FakeUnitOfWork({first: NOT_STARTED})
    tracer = TracerProvider().get_tracer("test")
    batch = [
        event(first, FulfillmentStatus.Pending, 0),
        event(first, FulfillmentStatus.Shipped, 1, trackingNumber="SHIP-1", carrier="C"),
        event(second, FulfillmentStatus.Pending, 0),  # not an order of this service
    ]
    spans = [tracer.start_span(f"record {index}") for index in range(len(batch))]
    token = set_batch_spans(spans)
    try:
        with json_lines("order_service.projection") as lines:
            projection_over(uow, [])(batch)
    finally:
        reset_batch_spans(token)
    (applied,) = lines.at("info")
    (unknown,) = lines.at("warning")
    assert applied["trace_id"] == format_trace_id(spans[1].get_span_context().trace_id)  # Shipped set the status
    assert applied["span_id"] == format_span_id(spans[1].get_span_context().span_id)
    assert unknown["trace_id"] == format_trace_id(spans[2].get_span_context().trace_id)


def test_a_refused_cancellation_is_one_info_line_with_its_reason(orders) -> None:
    order, _ = orders
    uow = FakeUnitOfWork({order: NOT_STARTED})
    shipped = {"trackingNumber": "SHIP-1", "carrier": "C"}
    refusal = "the order had shipped before the cancellation was processed"
    with json_lines("order_service.projection") as lines:
        projection_over(uow, [])([event(order, FulfillmentStatus.Shipped, 1, **shipped)])
        # The refusal comes with the order's current state again: the status does not move, the refusal is new.
        projection_over(uow, [])([event(order, FulfillmentStatus.Shipped, 1, cancellationRefused=refusal, **shipped)])
        projection_over(uow, [])([event(order, FulfillmentStatus.Shipped, 1, cancellationRefused=refusal, **shipped)])
    info = [(line["event"], line["status"], line.get("reason")) for line in lines.at("info")]
    assert info == [("order status applied", "Fulfilled", None), ("cancellation refused", "Fulfilled", refusal)]
    assert {line["orderId"] for line in lines.all()} == {str(order)}
