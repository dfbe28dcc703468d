"""Creates topics (broker auto-creation is off): the caller says which, as TopicSpecs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from messaging.backoff import Backoff
from messaging.settings import KafkaSettings, kafka_client_config

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its name, partitions and retention (ms); cleanup by deletion. Its replication factor
    and min.insync.replicas are the deployment's (KAFKA_TOPIC_REPLICATION_FACTOR, KAFKA_TOPIC_MIN_INSYNC_REPLICAS)."""

    name: str
    partitions: int
    retention_ms: int


def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec], timeout: float = 10.0) -> None:
    """Create the topics of specs that are missing on the cluster of settings, each with settings'
    replication factor and min.insync.replicas; existing ones are left alone.

    Raises KafkaException when the broker cannot be reached within timeout seconds, or refuses a topic (e.g.
    a replication factor above its number of brokers).
    """
    # librdkafka's lines through logging, like every client's (not printed past the log on stderr).
    admin = AdminClient(kafka_client_config(settings, logger=logging.getLogger("kafka.client")))
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=settings.kafka_topic_replication_factor,
            config={
                "retention.ms": str(spec.retention_ms),
                "cleanup.policy": "delete",
                "min.insync.replicas": str(settings.kafka_topic_min_insync_replicas),
            },
        )
        for spec in specs
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
            if exc.args[0].code() != _TOPIC_ALREADY_EXISTS:
                raise


def create_topics_in_background(
    settings: KafkaSettings, specs: Sequence[TopicSpec], stopping: threading.Event
) -> threading.Thread:
    """Start a thread that creates the topics of specs as soon as the broker answers, retrying with backoff
    (0.5 s doubling to 5 s) until it succeeds or stopping is set: start-up must not wait for Kafka."""

    def run() -> None:
        backoff = Backoff(first=0.5, maximum=5.0)
        while not stopping.is_set():
            try:
                ensure_topics(settings, specs)
                return
            except Exception as exc:
                log.warning("cannot create topics yet (%s); retrying", exc)
                stopping.wait(backoff.failed())

    thread = threading.Thread(target=run, name="create-topics", daemon=True)
    thread.start()
    return thread
