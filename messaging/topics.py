"""Creates the project's topics (broker auto-creation is off) and sets registry compatibility."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from messaging.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


def project_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """The event topics and their dead-letter topics."""
    return [
        TopicSpec(settings.order_events_topic, settings.order_events_partitions, settings.topic_retention_ms),
        TopicSpec(
            settings.fulfillment_events_topic, settings.fulfillment_events_partitions, settings.topic_retention_ms
        ),
        TopicSpec(settings.order_events_dlq_topic, 1, settings.topic_retention_ms),
        TopicSpec(settings.fulfillment_events_dlq_topic, 1, settings.topic_retention_ms),
    ]


def ensure_topics(settings: KafkaSettings, timeout: float = 10.0) -> None:
    """Create missing topics; existing ones are left alone. Raises KafkaException when the broker is away."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=1,
            config={"retention.ms": str(spec.retention_ms), "cleanup.policy": "delete"},
        )
        for spec in project_topics(settings)
        if spec.name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            log.info("created topic %s", name)
        except KafkaException as exc:
            # Another instance may have created it between our listing and our request.
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS
                raise


def create_topics_in_background(settings: KafkaSettings, stopping: threading.Event) -> threading.Thread:
    """Start-up must not wait for Kafka: topics are created as soon as the broker is reachable."""

    def run() -> None:
        delay = 0.5
        while not stopping.is_set() and settings.create_topics:
            try:
                ensure_topics(settings)
                return
            except Exception as exc:
                log.warning("cannot create topics yet (%s); retrying", exc)
                stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    thread = threading.Thread(target=run, name="create-topics", daemon=True)
    thread.start()
    return thread
