"""An order and its status state machine, free of I/O (the rules an order must keep: contracts/order_rules.py).

Times are timezone-aware UTC datetimes throughout; the store, the API representation and the Avro codec
convert at their edges. Money is `Decimal` at the contract's scale of 2.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from contract_models.events import FulfillmentStatus
from contracts.order_rules import Address, OrderLine, ValidOrder


class OrderStatus(StrEnum):
    """Where an order stands; the value is what the store and the API hold."""

    Pending = "Pending"
    Processing = "Processing"
    Fulfilled = "Fulfilled"
    Failed = "Failed"
    Cancelled = "Cancelled"


TERMINAL = frozenset({OrderStatus.Fulfilled, OrderStatus.Failed, OrderStatus.Cancelled})
# Statuses an order can no longer be cancelled from: it shipped, or it never will.
NOT_CANCELLABLE = frozenset({OrderStatus.Fulfilled, OrderStatus.Failed})
_RANK = {
    OrderStatus.Pending: 0,
    OrderStatus.Processing: 1,
    OrderStatus.Fulfilled: 2,
    OrderStatus.Failed: 2,
    OrderStatus.Cancelled: 2,
}
_FROM_FULFILLMENT = {
    FulfillmentStatus.Pending: OrderStatus.Processing,
    FulfillmentStatus.Shipped: OrderStatus.Fulfilled,
    FulfillmentStatus.Delivered: OrderStatus.Fulfilled,
    FulfillmentStatus.Failed: OrderStatus.Failed,
    FulfillmentStatus.Cancelled: OrderStatus.Cancelled,
}


class CancellationOutcome(StrEnum):
    """Where a requested cancellation stands: Requested (the Fulfillment Service has not answered yet),
    Cancelled, or Refused (the order had shipped)."""

    Requested = "Requested"
    Cancelled = "Cancelled"
    Refused = "Refused"


@dataclass(frozen=True)
class CancellationRequest:
    """A client's request to cancel an order: when it was made (UTC) and the reason the client gave, if any."""

    requested_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class FulfillmentView:
    """What the order knows of its fulfillment: its status, the sequence number of the last fulfillment
    event applied (-1: none yet) and the shipment's details."""

    status: OrderStatus
    sequence: int
    tracking_number: str | None = None
    carrier: str | None = None
    estimated_delivery: datetime | None = None
    failure_reason: str | None = None
    cancellation_refused: str | None = None


NOT_STARTED = FulfillmentView(status=OrderStatus.Pending, sequence=-1)


@dataclass(frozen=True)
class Order:
    """An accepted order: what was ordered, when (created_at; updated_at: its last status change), what it
    knows of its fulfillment, where it ships (None: placed without an address); cancellation: the cancellation
    a client asked for, if any."""

    order_id: uuid.UUID
    customer_id: str
    customer_name: str
    lines: tuple[OrderLine, ...]
    total: Decimal
    created_at: datetime
    updated_at: datetime
    fulfillment: FulfillmentView = NOT_STARTED
    shipping_address: Address | None = None
    cancellation: CancellationRequest | None = None

    @property
    def status(self) -> OrderStatus:
        """The order's status, which follows its fulfillment."""
        return self.fulfillment.status

    @property
    def cancellation_outcome(self) -> CancellationOutcome | None:
        """What became of the requested cancellation (None: none was requested): Cancelled once the order is,
        Refused once the Fulfillment Service said why not, Requested until then."""
        if self.cancellation is None:
            return None
        if self.status is OrderStatus.Cancelled:
            return CancellationOutcome.Cancelled
        if self.fulfillment.cancellation_refused is not None:
            return CancellationOutcome.Refused
        return CancellationOutcome.Requested


@dataclass(frozen=True)
class OrderPage:
    """One page of orders, newest first, and the cursor of the next page (None on the last one)."""

    orders: list[Order]
    next_cursor: str | None


def accept(order_id: uuid.UUID, request: ValidOrder, now: datetime) -> Order:
    """The order request as an accepted order under order_id: Pending, created and updated at now."""
    return Order(
        order_id=order_id,
        customer_id=request.customer_id,
        customer_name=request.customer_name,
        lines=request.lines,
        total=request.total,
        created_at=now,
        updated_at=now,
        shipping_address=request.shipping_address,
    )


def request_cancellation(order: Order, request: CancellationRequest) -> Order | None:
    """The order with request recorded, or None when nothing is to be recorded: a cancellation was requested
    before (asking again changes nothing), or the order is Fulfilled, Failed or Cancelled already (see
    NOT_CANCELLABLE; the caller tells the client why)."""
    if order.cancellation is not None or order.status in TERMINAL:
        return None
    return dataclasses.replace(order, cancellation=request, updated_at=request.requested_at)


def apply_fulfillment(
    current: FulfillmentView,
    status: FulfillmentStatus,
    sequence: int,
    tracking_number: str | None,
    carrier: str | None,
    estimated_delivery: datetime | None,
    reason: str | None,
    cancellation_refused: str | None = None,
) -> FulfillmentView | None:
    """The order after a fulfillment change, or None when the change is stale and changes nothing.

    Idempotent and monotonic: a change whose sequence is not above the last applied one is a redelivery
    or arrived late and is ignored; an order never moves back, and a terminal order stays terminal
    (Delivered after Shipped keeps it Fulfilled and may refresh the delivery details). A new order
    starts at sequence -1. A refused cancellation (cancellation_refused) is recorded whatever the sequence:
    the Fulfillment Service reports it with the order's current state again, which changes nothing else.
    """
    target = _FROM_FULFILLMENT.get(status, OrderStatus.Processing)
    refusal = current.cancellation_refused or cancellation_refused
    stale = (
        sequence <= current.sequence
        or (current.status in TERMINAL and target != current.status)
        or _RANK[target] < _RANK[current.status]
    )
    if stale:
        if refusal != current.cancellation_refused:
            return dataclasses.replace(current, cancellation_refused=refusal)
        return None
    return FulfillmentView(
        status=target,
        sequence=max(sequence, current.sequence),
        tracking_number=current.tracking_number if tracking_number is None else tracking_number,
        carrier=current.carrier if carrier is None else carrier,
        estimated_delivery=current.estimated_delivery if estimated_delivery is None else estimated_delivery,
        failure_reason=reason if target == OrderStatus.Failed else current.failure_reason,
        cancellation_refused=refusal,
    )
