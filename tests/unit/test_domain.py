from datetime import UTC, datetime
from decimal import Decimal

import pytest

from contract_models.events import FulfillmentStatus
from contracts.order_rules import order_total
from order_service.domain import FulfillmentView, OrderStatus, apply_fulfillment

NEW = FulfillmentView(status=OrderStatus.Pending, sequence=-1)
ETA = datetime(2030, 1, 2, 12, 30, tzinfo=UTC)


def apply(view, status, seq, **details):
    return apply_fulfillment(
        view, status, seq, details.get("tracking"), details.get("carrier"), details.get("eta"), details.get("reason")
    )


def test_total_is_exact_decimal_sum():
    assert order_total([(3, Decimal("0.10")), (1, Decimal("0.20"))]) == Decimal("0.50")
    assert order_total([(10_000, Decimal("1000000.00"))] * 1000) == Decimal("10000000000000.00")


def test_pickup_then_shipped_then_delivered():
    picked = apply(NEW, FulfillmentStatus.Pending, 0)
    assert picked.status == OrderStatus.Processing
    shipped = apply(picked, FulfillmentStatus.Shipped, 1, tracking="SHIP-1", carrier="MockCarrier", eta=ETA)
    assert (shipped.status, shipped.tracking_number, shipped.carrier) == (
        OrderStatus.Fulfilled,
        "SHIP-1",
        "MockCarrier",
    )
    delivered = apply(shipped, FulfillmentStatus.Delivered, 2)
    assert delivered.status == OrderStatus.Fulfilled
    assert (delivered.tracking_number, delivered.estimated_delivery) == ("SHIP-1", ETA)


def test_redelivered_event_changes_nothing():
    picked = apply(NEW, FulfillmentStatus.Pending, 0)
    assert apply(picked, FulfillmentStatus.Pending, 0) is None
    shipped = apply(picked, FulfillmentStatus.Shipped, 1, tracking="SHIP-1")
    assert apply(shipped, FulfillmentStatus.Shipped, 1, tracking="SHIP-2") is None


def test_late_pickup_never_moves_a_finished_order_back():
    shipped = apply(NEW, FulfillmentStatus.Shipped, 1, tracking="SHIP-1")
    assert shipped.status == OrderStatus.Fulfilled
    assert apply(shipped, FulfillmentStatus.Pending, 0) is None


@pytest.mark.parametrize("terminal", [FulfillmentStatus.Shipped, FulfillmentStatus.Failed])
def test_terminal_order_stays_terminal(terminal):
    done = apply(NEW, terminal, 1, reason="boom")
    other = FulfillmentStatus.Failed if terminal == FulfillmentStatus.Shipped else FulfillmentStatus.Shipped
    assert apply(done, other, 5) is None


def test_failure_reason_kept():
    failed = apply(apply(NEW, FulfillmentStatus.Pending, 0), FulfillmentStatus.Failed, 1, reason="provider down")
    assert (failed.status, failed.failure_reason) == (OrderStatus.Failed, "provider down")
