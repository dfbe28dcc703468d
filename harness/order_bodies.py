"""CreateOrderRequest bodies: one builder for every order the tests, the benchmark and chaos runs send.

Kept free of imports on purpose: the load generator's child process imports it, and each of its
starts (one per ramp step) should not pay for HTTP clients or the product's models.
"""

from __future__ import annotations

from typing import Any


def order_body(index: int = 0, *, customer: str = "cust-1", items: int = 1) -> dict[str, Any]:
    """A valid CreateOrderRequest (JSON-ready) with items lines; products and quantities vary with index.

    Line n is product ``p-<(index + n) % 500>``, quantity ``1 + (index + n) % 5``, price 19.99: with
    index 0 the quantities are 1, 2, 3, ... so two lines total 59.97.
    """
    return {
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
