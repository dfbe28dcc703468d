"""The Order Service's own metric series (the shared ones: outbox/metrics.py, messaging/metrics.py and the HTTP
request durations of observability/http_metrics.py).

* `orderprocessing_orders_created_total` (counter): orders accepted and stored; replays of an Idempotency-Key
  are not counted.
* `orderprocessing_order_long_polls_waiting` (gauge): `GET /api/orders/{orderId}?waitFor=...` requests waiting
  now.
* `orderprocessing_orders_stale` and `orderprocessing_orders_stale_oldest_age_seconds` (gauges): unfinished
  orders without fulfillment progress for STALE_ORDER_SECONDS and the longest such wait (0 without any): what
  readiness reports as `staleOrders`, counted at scrape time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from observability.metrics import Metrics


class OrderMetrics:
    """The series the order use cases observe, declared in metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.orders_created = metrics.counter(
            "orders_created_total", "Orders accepted and stored (Idempotency-Key replays not counted)."
        )
        self.long_polls_waiting = metrics.gauge(
            "order_long_polls_waiting", "Order reads waiting for a status (waitFor) now."
        )


def report_stale_orders(metrics: Metrics, stale_orders: Callable[[], Awaitable[tuple[int, timedelta | None]]]) -> None:
    """Set the stale-order gauges from stale_orders() (the use case readiness asks) before each scrape."""
    count = metrics.gauge(
        "orders_stale", "Unfinished orders without fulfillment progress for STALE_ORDER_SECONDS (stuck beyond the SLA)."
    )
    oldest = metrics.gauge(
        "orders_stale_oldest_age_seconds", "Longest time without fulfillment progress among stale orders (0 if none)."
    )

    async def refresh() -> None:
        stale, longest = await stale_orders()
        count.set(stale)
        oldest.set(0.0 if longest is None else longest.total_seconds())

    metrics.refresh_at_scrape("stale_orders", refresh)
