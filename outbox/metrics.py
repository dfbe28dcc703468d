"""The outbox's metric series, for both services' relays.

* `orderprocessing_outbox_publish_latency_seconds{topic}` (histogram): from an outbox row being written (the
  state change it reports committed) to the broker confirming its event; a relay that waits for a broker or
  registry outage shows it here.
* `orderprocessing_outbox_backlog_events`, `orderprocessing_outbox_oldest_unpublished_age_seconds` (0 without
  a backlog) and `orderprocessing_outbox_parked_events` (gauges): what readiness reports
  (outbox.parking.outbox_health), read from the database at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from observability.metrics import WAIT_BUCKETS, Metrics, family
from outbox.parking import OutboxHealth


class RelayMetrics:
    """The relay's publish latency histogram in metrics, one cached child per topic."""

    def __init__(self, metrics: Metrics) -> None:
        self._latency = metrics.histogram(
            "outbox_publish_latency_seconds",
            "Time from an outbox row being written to the broker confirming its event, by topic.",
            ["topic"],
            buckets=WAIT_BUCKETS,
        )
        self._by_topic: dict[str, Any] = {}

    def published(self, topic: str, seconds: float) -> None:
        """The broker confirmed an event of topic seconds after its row was written."""
        child = self._by_topic.get(topic)
        if child is None:
            child = self._by_topic[topic] = self._latency.labels(topic)
        child.observe(max(0.0, seconds))


def report_outbox_health(metrics: Metrics, health: Callable[[], OutboxHealth]) -> None:
    """Serve health() (blocking: two queries of the service's database) as the outbox gauges at each scrape."""

    def collect() -> Iterable[Metric]:
        now = health()
        backlog = family("gauge", "outbox_backlog_events", "Events written to the outbox, not yet confirmed by Kafka.")
        backlog.add_metric([], now.backlog)
        age = family(
            "gauge",
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest event waiting in the outbox (0 when none waits).",
        )
        age.add_metric([], now.oldest_unpublished_age_s or 0.0)
        parked = family(
            "gauge", "outbox_parked_events", "Outbox events parked because they can never be published as they are."
        )
        parked.add_metric([], now.parked)
        return [backlog, age, parked]

    metrics.collect_at_scrape("outbox", collect)
