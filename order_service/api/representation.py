"""The API representation of orders (schemas/openapi/order-service.yaml: `Order`, `OrderPage`).

Fields are camelCase; times are ISO 8601 in UTC with a "Z" (microseconds when there are any); money is
`Decimal`, which `httpapi.json_body` writes as an exact JSON number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.order_rules import address_document
from order_service.domain import Order, OrderPage


def order_document(order: Order) -> dict[str, Any]:
    """The order as the API's Order document."""
    fulfillment = order.fulfillment
    return {
        "orderId": str(order.order_id),
        "customerId": order.customer_id,
        "customerName": order.customer_name,
        "items": [
            {
                "productId": line.product_id,
                "productName": line.product_name,
                "quantity": line.quantity,
                "price": line.price,
            }
            for line in order.lines
        ],
        "totalAmount": order.total,
        "status": order.status.value,
        "createdAt": iso_utc(order.created_at),
        "updatedAt": iso_utc(order.updated_at),
        "trackingNumber": fulfillment.tracking_number,
        "carrier": fulfillment.carrier,
        "estimatedDelivery": iso_utc(fulfillment.estimated_delivery),
        "failureReason": fulfillment.failure_reason,
        "shippingAddress": None if order.shipping_address is None else address_document(order.shipping_address),
        "cancellation": cancellation_document(order),
    }


def cancellation_document(order: Order) -> dict[str, Any] | None:
    """The order's cancellation as the API's Cancellation document (None: none was requested)."""
    request, outcome = order.cancellation, order.cancellation_outcome
    if request is None or outcome is None:
        return None
    return {
        "requestedAt": iso_utc(request.requested_at),
        "outcome": outcome.value,
        "reason": request.reason,
        "refusalReason": order.fulfillment.cancellation_refused,
    }


def page_document(page: OrderPage) -> dict[str, Any]:
    """The page as the API's OrderPage document: {items: [Order], nextCursor}."""
    return {"items": [order_document(order) for order in page.orders], "nextCursor": page.next_cursor}


def iso_utc(moment: datetime | None) -> str | None:
    """A UTC datetime as ISO 8601 with "Z" ("2025-03-01T12:00:00Z", "2025-03-01T12:00:00.123000Z"); None stays None."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
