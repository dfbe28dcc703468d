"""The metric series of the Kafka plumbing both services share: dead letters, consumed records, a group's lag.

* `orderprocessing_dead_lettered_records_total{error_type, outcome}` (counter): poison records copied to the
  dead-letter topic (`outcome="published"`) or kept in the local spool because the topic refused them for good
  (`outcome="spooled"`); error_type is the copy's `__connect.errors.exception.class.name` (a fixed set).
* `orderprocessing_consumer_records_processed_total{topic}` (counter): consumed records whose work finished,
  dead-lettered ones included.
* `orderprocessing_consumer_lag_records{topic, group, partition}`, `..._last_progress_age_seconds{topic, group}`
  and `..._stalled_partitions{topic, group}` (gauges): the group's lag and progress as the broker reports them
  (messaging.group_progress), read at scrape time; absent while the broker cannot tell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric

from messaging.group_progress import GroupProgress
from observability.metrics import Metrics, family


def dead_lettered(metrics: Metrics) -> Counter:
    """The dead-lettered records counter in metrics (labels error_type, outcome)."""
    return metrics.counter(
        "dead_lettered_records_total",
        "Records that can never be processed, copied to the dead-letter topic (outcome published) or kept in the "
        "local spool (outcome spooled), by error type.",
        ["error_type", "outcome"],
    )


def records_processed(metrics: Metrics, topic: str) -> Any:
    """The processed records counter's child for topic in metrics."""
    return metrics.counter(
        "consumer_records_processed_total",
        "Consumed records whose work finished (dead-lettered ones included), by topic.",
        ["topic"],
    ).labels(topic)


def report_group_progress(metrics: Metrics, progress: GroupProgress) -> None:
    """Serve progress.report() (blocking, a reading at most a second old) as the lag gauges at each scrape."""

    def collect() -> Iterable[Metric]:
        report = progress.report()
        lag = family(
            "gauge",
            "consumer_lag_records",
            "Records of a partition not yet committed by the consumer group, as the broker reports them.",
            ["topic", "group", "partition"],
        )
        age = family(
            "gauge",
            "consumer_last_progress_age_seconds",
            "Seconds since the committed offset of the longest-waiting lagging partition moved (0 without lag).",
            ["topic", "group"],
        )
        stalled = family(
            "gauge",
            "consumer_stalled_partitions",
            "Partitions with records waiting whose committed offset has not moved for the stall time.",
            ["topic", "group"],
        )
        if report.lag is not None:
            for partition, records in report.lag.items():
                lag.add_metric([report.topic, report.group, str(partition)], records)
            stalled.add_metric([report.topic, report.group], len(report.stalled))
        if report.last_progress_age_s is not None:
            age.add_metric([report.topic, report.group], report.last_progress_age_s)
        return [lag, age, stalled]

    metrics.collect_at_scrape("consumer_group", collect)
