"""The use cases' exceptions as the problem+json answers the contract names for them."""

from __future__ import annotations

from fulfillment_service.errors import FulfillmentNotFound, FulfillmentServiceError
from httpapi.problems import ProblemError


def problem_for(error: FulfillmentServiceError) -> ProblemError:
    """The answer to error: 404 naming orderId for an order without a fulfillment. Raises TypeError for an
    exception without an answer here."""
    if isinstance(error, FulfillmentNotFound):
        return ProblemError(
            404,
            "Not Found",
            f"No fulfillment for order {error.order_id}.",
            [{"field": "orderId", "message": "no such order"}],
        )
    raise TypeError(f"no problem document for {type(error).__name__}")
