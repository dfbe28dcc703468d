"""The use cases' exceptions as the problem+json answers the contract names for them."""

from __future__ import annotations

from starlette.responses import Response

from httpapi.problems import ProblemError, problem_response
from order_service.errors import (
    EventNotEncodable,
    EventSchemaRefused,
    EventTooLarge,
    IdempotencyKeyReused,
    InvalidCursor,
    OrderNotCancellable,
    OrderNotFound,
    OrderServiceError,
)


def problem_for(error: OrderServiceError) -> ProblemError:
    """The answer to error: 404 for an unknown order, 409 for a cancellation of an order that shipped or
    failed, 413 for an event too large to publish, 422 for a reused Idempotency-Key, an order whose event does
    not encode, or a cursor this service did not hand out."""
    if isinstance(error, OrderNotFound):
        return ProblemError(
            404, "Not Found", f"No order {error.order_id}.", [{"field": "orderId", "message": "no such order"}]
        )
    if isinstance(error, OrderNotCancellable):
        return ProblemError(
            409,
            "Conflict",
            f"Order {error.order_id} is {error.status}; it can no longer be cancelled.",
            [{"field": "orderId", "message": f"the order is {error.status}"}],
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


def schema_refused_response(error: EventSchemaRefused, path: str) -> Response:
    """503 with Retry-After for an order refused because the registry refuses its event's schema; `errors`
    names each field the registry calls incompatible (or the subject, when it names none)."""
    if error.fields:
        errors = [
            {"field": field, "message": f"incompatible with the registry's {error.subject}"} for field in error.fields
        ]
    else:
        errors = [{"field": "body", "message": error.reason[:500]}]
    return problem_response(
        503,
        "Service Unavailable",
        f"The schema registry refuses the event schema of {error.subject}, so no order can be published: "
        f"{error.reason[:500]}",
        errors,
        path,
        headers={"Retry-After": str(error.retry_after_seconds)},
    )
