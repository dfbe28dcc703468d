"""What the Fulfillment Service's use cases raise when a request cannot be served. Each is a
`FulfillmentServiceError`; the HTTP edge maps them to problem+json answers (fulfillment_service/api/problems.py)."""

from __future__ import annotations

import uuid


class FulfillmentServiceError(Exception):
    """A request the use cases refuse; the message says why."""


class FulfillmentNotFound(FulfillmentServiceError):
    """No fulfillment for order_id: the order was never picked up here (or is not an order at all)."""

    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(f"no fulfillment for order {order_id}")
        self.order_id = order_id
