"""The API representation of fulfillments (schemas/openapi/fulfillment-service.yaml: `FulfillmentStatus`).

Fields are camelCase; times are ISO 8601 in UTC with a "Z" (microseconds when there are any).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fulfillment_service.domain import Fulfillment


def fulfillment_document(fulfillment: Fulfillment) -> dict[str, Any]:
    """The fulfillment as the API's FulfillmentStatus document."""
    f = fulfillment
    return {
        "orderId": str(f.order_id),
        "status": f.status.value,
        "trackingNumber": f.tracking_number,
        "carrier": f.carrier,
        "estimatedDelivery": iso_utc(f.estimated_delivery),
        "failureReason": f.failure_reason,
        "cancellationRefused": f.cancel_refused,
        "attempts": f.attempts,
        "updatedAt": iso_utc(f.updated_at),
    }


def iso_utc(moment: datetime | None) -> str | None:
    """A UTC datetime as ISO 8601 with "Z" ("2025-03-01T12:00:00Z", "2025-03-01T12:00:00.123000Z"); None stays None."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
