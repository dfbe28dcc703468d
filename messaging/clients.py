"""Producer and consumer configured the one way this project uses them."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, Producer

from messaging.settings import KafkaSettings, kafka_client_config

# librdkafka's own log lines (connection refused while the broker is away...) go through logging.
_CLIENT_LOG = logging.getLogger("kafka.client")


def make_producer(settings: KafkaSettings, client_id: str, **overrides: Any) -> Producer:
    """Idempotent producer: acks=all, no duplicates or reordering from its own retries; connected and
    authenticated as settings say (messaging.settings.kafka_client_config, KAFKA_CLIENT_PROPERTIES last)."""
    conf: dict[str, Any] = {
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # A record not delivered in this time is reported failed and retried from the outbox later.
        "message.timeout.ms": 30_000,
        "reconnect.backoff.max.ms": 2_000,
        "logger": _CLIENT_LOG,
    }
    conf.update(overrides)
    return Producer(kafka_client_config(settings, **conf))


def make_consumer(settings: KafkaSettings, group_id: str, client_id: str, **overrides: Any) -> Consumer:
    """Manual commits only: offsets move after the work for them is durable.

    auto.offset.reset is earliest: a group without a committed offset starts at the beginning. The consumer
    runtime (messaging.consumer) overrides it with error, so that an offset out of range (e.g. beyond the end
    of a recreated topic) is reported to it instead of being reset silently, and decides the start itself.
    Connected and authenticated as settings say (messaging.settings.kafka_client_config).
    """
    conf: dict[str, Any] = {
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "reconnect.backoff.max.ms": 2_000,
        "fetch.wait.max.ms": 50,
        # Partitions added to a topic are seen within 30 s instead of librdkafka's default 300 s, so records on
        # them do not wait minutes for a consumer.
        "topic.metadata.refresh.interval.ms": 30_000,
        "logger": _CLIENT_LOG,
    }
    conf.update(overrides)
    return Consumer(kafka_client_config(settings, **conf))
