"""What the Order Service's use cases raise when a request cannot be served. Each is an `OrderServiceError`;
the HTTP edge maps them to problem+json answers (order_service/api/problems.py)."""

from __future__ import annotations

import uuid


class OrderServiceError(Exception):
    """A request the use cases refuse; the message says why."""


class OrderNotFound(OrderServiceError):
    """No order has order_id."""

    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(f"no order {order_id}")
        self.order_id = order_id


class OrderNotCancellable(OrderServiceError):
    """The order is Fulfilled or Failed and no cancellation was requested before: there is nothing to cancel.

    status: the order's status (its value, e.g. "Fulfilled").
    """

    def __init__(self, order_id: uuid.UUID, status: str) -> None:
        super().__init__(f"order {order_id} is {status} and can no longer be cancelled")
        self.order_id = order_id
        self.status = status


class IdempotencyKeyReused(OrderServiceError):
    """The Idempotency-Key was used before with a different order."""


class InvalidCursor(OrderServiceError, ValueError):
    """A page cursor this service did not hand out."""


class EventTooLarge(OrderServiceError):
    """The order's OrderCreated event would exceed what the event stream takes.

    size and limit: bytes of the encoded event and the most the service publishes.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the order's event would be {size} bytes; at most {limit} bytes can be published")
        self.size = size
        self.limit = limit


class EventSchemaRefused(OrderServiceError):
    """The Schema Registry refuses the schema of the order's event (an incompatible or invalid schema was
    deployed), so no order can be published: none is accepted until the registry accepts it.

    subject: the registry subject; reason: the registry's words; fields: the fields it names as incompatible;
    retry_after_seconds: when the registry will be asked again.
    """

    def __init__(self, subject: str, reason: str, fields: tuple[str, ...], retry_after_seconds: int) -> None:
        super().__init__(reason)
        self.subject = subject
        self.reason = reason
        self.fields = fields
        self.retry_after_seconds = retry_after_seconds


class EventNotEncodable(OrderServiceError):
    """The order's OrderCreated event does not encode with the committed Avro schema, so it could never be
    published; the message is the encoder's."""
