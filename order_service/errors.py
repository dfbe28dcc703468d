"""What the Order Service's use cases raise when a request cannot be served; the API maps each to a
problem+json answer (order_service/api.py)."""

from __future__ import annotations


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was used before with a different order."""


class InvalidCursor(ValueError):
    """A page cursor this service did not hand out."""


class EventTooLarge(Exception):
    """The order's OrderCreated event would exceed what the event stream takes.

    size and limit: bytes of the encoded event and the most the service publishes.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the order's event would be {size} bytes; at most {limit} bytes can be published")
        self.size = size
        self.limit = limit
