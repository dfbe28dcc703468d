"""CreateOrderRequest bodies: one builder for every order the tests, the benchmark and chaos runs send, and
the order too large to publish.

Kept free of imports beyond the standard library on purpose: the load generator's child process imports it,
and each of its starts (one per ramp step) should not pay for HTTP clients or the product's models.
"""

from __future__ import annotations

import json
from typing import Any

# Order Service limits above the producer's message.max.bytes (1,000,000): an oversize_order() is accepted,
# and Kafka refuses its event (environment variables of the Order Service; bytes).
OVERSIZE_ORDER_LIMITS = {"MAX_BODY_BYTES": "2097152", "MAX_EVENT_BYTES": "3000000"}


# A shippingAddress (Order Service API 1.3.0, OrderCreated v2) outside the mock provider's home country (DE).
SHIPPING_ADDRESS: dict[str, Any] = {
    "recipientName": "Marie Curie",
    "addressLines": ["36 Quai de Bethune"],
    "city": "Paris",
    "postalCode": "75004",
    "country": "FR",
}


def order_body(
    index: int = 0, *, customer: str = "cust-1", items: int = 1, shipping_address: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A valid CreateOrderRequest (JSON-ready) with items lines; products and quantities vary with index.

    Line n is product ``p-<(index + n) % 500>``, quantity ``1 + (index + n) % 5``, price 19.99: with
    index 0 the quantities are 1, 2, 3, ... so two lines total 59.97. With shipping_address, the body carries it
    (an Order Service before API 1.3.0 refuses it: 422, an unknown member).
    """
    body: dict[str, Any] = {
        "customerId": customer,
        "customerName": "Ada Lovelace",
        "items": [
            {
                "productId": f"p-{(index + line) % 500}",
                "productName": f"Product {(index + line) % 500}",
                "quantity": 1 + (index + line) % 5,
                "price": 19.99,
            }
            for line in range(items)
        ],
    }
    if shipping_address is not None:
        body["shippingAddress"] = shipping_address
    return body


def oversize_order(customer: str = "big-spender") -> bytes:
    """A valid CreateOrderRequest of about 1.6 MB as UTF-8 JSON, whose OrderCreated (about 1.6 MB of Avro)
    exceeds the producer's 1,000,000 bytes: 1,000 lines whose product id and name are about 200
    four-byte characters each. The Order Service accepts it only under OVERSIZE_ORDER_LIMITS."""
    body = order_body(customer=customer, items=1000)
    for index, item in enumerate(body["items"]):
        item["productId"] = f"{index:04d}" + "\U0001f4e6" * 196
        item["productName"] = "\U0001f4e6" * 200
    return json.dumps(body, ensure_ascii=False).encode()
