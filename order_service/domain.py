"""The order's status state machine, free of I/O (the rules an order must keep: contracts/order_rules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contract_models.events import FulfillmentStatus


class OrderStatus(StrEnum):
    Pending = "Pending"
    Processing = "Processing"
    Fulfilled = "Fulfilled"
    Failed = "Failed"


TERMINAL = frozenset({OrderStatus.Fulfilled, OrderStatus.Failed})
_RANK = {OrderStatus.Pending: 0, OrderStatus.Processing: 1, OrderStatus.Fulfilled: 2, OrderStatus.Failed: 2}
_FROM_FULFILLMENT = {
    FulfillmentStatus.Pending: OrderStatus.Processing,
    FulfillmentStatus.Shipped: OrderStatus.Fulfilled,
    FulfillmentStatus.Delivered: OrderStatus.Fulfilled,
    FulfillmentStatus.Failed: OrderStatus.Failed,
}


@dataclass(frozen=True)
class FulfillmentView:
    """What the order knows of its fulfillment."""

    status: OrderStatus
    sequence: int
    tracking_number: str | None = None
    carrier: str | None = None
    estimated_delivery_ms: int | None = None
    failure_reason: str | None = None


def apply_fulfillment(
    current: FulfillmentView,
    status: FulfillmentStatus,
    sequence: int,
    tracking_number: str | None,
    carrier: str | None,
    estimated_delivery_ms: int | None,
    reason: str | None,
) -> FulfillmentView | None:
    """The order after a fulfillment change, or None when the change is stale and changes nothing.

    Idempotent and monotonic: a change whose sequence is not above the last applied one is a redelivery
    or arrived late and is ignored; an order never moves back, and a terminal order stays terminal
    (Delivered after Shipped keeps it Fulfilled and may refresh the delivery details). A new order
    starts at sequence -1.
    """
    target = _FROM_FULFILLMENT.get(status, OrderStatus.Processing)
    if sequence <= current.sequence:
        return None
    if current.status in TERMINAL and target != current.status:
        return None
    if _RANK[target] < _RANK[current.status]:
        return None
    return FulfillmentView(
        status=target,
        sequence=max(sequence, current.sequence),
        tracking_number=tracking_number or current.tracking_number,
        carrier=carrier or current.carrier,
        estimated_delivery_ms=estimated_delivery_ms or current.estimated_delivery_ms,
        failure_reason=reason if target == OrderStatus.Failed else current.failure_reason,
    )
