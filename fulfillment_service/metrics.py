"""The Fulfillment Service's own metric series (the shared ones: outbox/metrics.py, messaging/metrics.py and the
HTTP request durations of observability/http_metrics.py).

* `orderprocessing_fulfillment_outcomes_total{status}` (counter): outcomes recorded by this instance, status
  `Shipped`, `Failed` or `Delivered` (a simulated delivery, after the order's `Shipped`).
* `orderprocessing_provider_call_duration_seconds{outcome}` (histogram): shipping provider calls, outcome
  `success` or `failure`.
* `orderprocessing_provider_call_failures_total{reason}` (counter): failed calls by reason class: `error` (the
  provider answered with an error), `timeout` (no answer within PROVIDER_TIMEOUT_SECONDS), `cancelled`,
  `exception` (any other failure of the call).
* `orderprocessing_fulfillment_retries_scheduled_total` (counter): failed attempts followed by a scheduled retry.
* `orderprocessing_circuit_breaker_state{state}` (gauge, read at scrape time): 1 for the breaker's state
  (`closed`, `open`, `half_open`), 0 for the others; `orderprocessing_circuit_breaker_opened_total` (counter).
* `orderprocessing_fulfillment_orders_in_flight` (gauge, read at scrape time): orders fetched from order-events
  whose work has not finished (health's `inFlight`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from fulfillment_service.domain import Status
from fulfillment_service.resilience import BreakerState, CircuitBreaker
from fulfillment_service.shipping import ProviderError
from observability.metrics import Metrics, family

# Provider calls take 100-500 ms (the mock's default range) and are cut at the 10 s timeout.
PROVIDER_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)


class FulfillmentMetrics:
    """The series the fulfillment use cases observe, declared in metrics; label children made once."""

    def __init__(self, metrics: Metrics) -> None:
        outcomes = metrics.counter(
            "fulfillment_outcomes_total", "Fulfillment outcomes recorded by this instance, by status.", ["status"]
        )
        self._outcomes = {status: outcomes.labels(status.value) for status in Status if status.is_terminal}
        duration = metrics.histogram(
            "provider_call_duration_seconds",
            "Shipping provider calls (create shipment), by outcome.",
            ["outcome"],
            buckets=PROVIDER_BUCKETS,
        )
        self._succeeded = duration.labels("success")
        self._call_failed = duration.labels("failure")
        failures = metrics.counter(
            "provider_call_failures_total", "Failed shipping provider calls, by reason class.", ["reason"]
        )
        self._failures = {reason: failures.labels(reason) for reason in ("error", "timeout", "cancelled", "exception")}
        self._retries = metrics.counter(
            "fulfillment_retries_scheduled_total", "Failed provider attempts followed by a scheduled retry."
        )

    def provider_succeeded(self, seconds: float) -> None:
        """A provider call returned a shipment after seconds."""
        self._succeeded.observe(seconds)

    def provider_failed(self, exc: BaseException, seconds: float) -> None:
        """A provider call ended with exc after seconds."""
        self._call_failed.observe(seconds)
        self._failures[failure_reason(exc)].inc()

    def recorded(self, status: Status) -> None:
        """This instance recorded an order's transition to status (Pending: a retry was scheduled)."""
        if status is Status.Pending:
            self._retries.inc()
        else:
            self._outcomes[status].inc()


def failure_reason(exc: BaseException) -> str:
    """The reason class of a failed provider call: error, timeout, cancelled or exception."""
    if isinstance(exc, ProviderError):
        return "error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "exception"


def report_breaker(metrics: Metrics, breaker: CircuitBreaker) -> None:
    """Serve the breaker's state (one series per state, 1 for the current one) and how often it opened."""

    def collect() -> Iterable[Metric]:
        current = breaker.state
        state = family(
            "gauge", "circuit_breaker_state", "The shipping provider's circuit breaker: 1 for its state.", ["state"]
        )
        for each in BreakerState:
            state.add_metric([each.value], 1.0 if each is current else 0.0)
        opened = family("counter", "circuit_breaker_opened_total", "Times the circuit breaker opened.")
        opened.add_metric([], breaker.opened_count)
        return [state, opened]

    metrics.collect_at_scrape("circuit_breaker", collect)


def report_in_flight(metrics: Metrics, in_flight: Callable[[], int]) -> None:
    """Serve in_flight() (orders fetched whose work has not finished) at each scrape."""
    gauge: Any = metrics.gauge(
        "fulfillment_orders_in_flight", "Orders fetched from order-events whose work has not finished."
    )
    gauge.set_function(in_flight)
