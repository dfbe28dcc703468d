"""The use cases' exceptions as the problem+json answers the contract names for them."""

from __future__ import annotations

from httpapi.problems import ProblemError
from order_service.errors import (
    EventNotEncodable,
    EventTooLarge,
    IdempotencyKeyReused,
    InvalidCursor,
    OrderNotFound,
    OrderServiceError,
)


def problem_for(error: OrderServiceError) -> ProblemError:
    """The answer to error: 404 for an unknown order, 413 for an event too large to publish, 422 for a reused
    Idempotency-Key, an order whose event does not encode, or a cursor this service did not hand out."""
    if isinstance(error, OrderNotFound):
        return ProblemError(
            404, "Not Found", f"No order {error.order_id}.", [{"field": "orderId", "message": "no such order"}]
        )
    if isinstance(error, IdempotencyKeyReused):
        return ProblemError(
            422,
            "Idempotency-Key reused",
            "This Idempotency-Key was used with a different order.",
            [{"field": "Idempotency-Key", "message": "already used with a different order"}],
        )
    if isinstance(error, EventTooLarge):
        return ProblemError(413, "Content Too Large", f"{error}.", [{"field": "body", "message": str(error)}])
    if isinstance(error, EventNotEncodable):
        return ProblemError(
            422,
            "Invalid request",
            "The order cannot be written as an event.",
            [{"field": "body", "message": str(error)}],
        )
    if isinstance(error, InvalidCursor):
        return ProblemError(
            422,
            "Invalid request",
            "cursor is not one this service handed out.",
            [{"field": "cursor", "message": "invalid cursor"}],
        )
    raise TypeError(f"no problem document for {type(error).__name__}")
