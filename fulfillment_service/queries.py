"""The fulfillment read use case: an order's fulfillment as this service last recorded it.

It reads through a FulfillmentReader (fulfillment_service/unit_of_work.py), off the event loop, and raises the
domain exceptions of fulfillment_service/errors.py; errors of the database (SQLAlchemy's) propagate unchanged,
and the HTTP edge answers a storage outage with 503 (httpapi/error_boundary.py).
"""

from __future__ import annotations

import uuid

from fulfillment_service.domain import Fulfillment
from fulfillment_service.errors import FulfillmentNotFound
from fulfillment_service.unit_of_work import FulfillmentReader


class FulfillmentQueries:
    """The read use cases of one service instance, over reader."""

    def __init__(self, reader: FulfillmentReader) -> None:
        self._reader = reader

    async def get(self, order_id: uuid.UUID) -> Fulfillment:
        """The order's fulfillment. Raises FulfillmentNotFound when the order was never picked up."""
        fulfillment = await self._reader.get(order_id)
        if fulfillment is None:
            raise FulfillmentNotFound(order_id)
        return fulfillment
