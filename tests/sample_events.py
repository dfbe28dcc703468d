"""Events as the services write them, for the tests: one builder per event type, any field overridden.

The defaults pass every rule (contracts/): an order of one line whose totalAmount is the sum of its lines,
and a status change with the sequence the Fulfillment Service gives that status.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged, OrderCreated, OrderItem

# The sequence of each status's event (fulfillment_service.domain: picked up 0, outcome 1, delivered 2).
_SEQUENCE = {FulfillmentStatus.Pending: 0, FulfillmentStatus.Delivered: 2}


def order_line(**overrides: Any) -> OrderItem:
    """One order line: product p-1 "Lamp", quantity 1 at 1.00, with overrides."""
    return OrderItem(
        **{"productId": "p-1", "productName": "Lamp", "quantity": 1, "price": Decimal("1.00"), **overrides}
    )


def order_created(**overrides: Any) -> OrderCreated:
    """An OrderCreated of now with fresh ids, customer c-1 "Ada", one order_line(); totalAmount, unless
    given, is the sum of quantity * price over the items."""
    fields: dict[str, Any] = {
        "eventId": uuid.uuid4(),
        "timestamp": datetime.now(UTC),
        "orderId": uuid.uuid4(),
        "customerId": "c-1",
        "customerName": "Ada",
        "items": [order_line()],
        **overrides,
    }
    fields.setdefault("totalAmount", sum((i.quantity * i.price for i in fields["items"]), Decimal("0.00")))
    return OrderCreated(**fields)


def status_changed(status: FulfillmentStatus = FulfillmentStatus.Pending, **overrides: Any) -> FulfillmentStatusChanged:
    """A FulfillmentStatusChanged of now with fresh ids and the status's own sequence, with overrides."""
    fields: dict[str, Any] = {
        "eventId": uuid.uuid4(),
        "orderId": uuid.uuid4(),
        "status": status,
        "sequence": _SEQUENCE.get(status, 1),
        "timestamp": datetime.now(UTC),
        **overrides,
    }
    return FulfillmentStatusChanged(**fields)
