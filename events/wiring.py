"""How a service publishes and consumes a declared topic: the plumbing built from the topology and the
settings, so each service's bootstrap names only its topics, its client ids and its handler."""

from __future__ import annotations

import functools
import threading
from collections.abc import Collection
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine, Table

from events.codecs import codec_for, event_codecs
from events.settings import EventSettings
from events.topology import DEAD_LETTER_HEADERS, TOPICS, Service, TopicDeclaration
from messaging.clients import make_consumer, make_producer
from messaging.consumer.dispatch import Dispatcher
from messaging.consumer.runtime import ConsumerRuntime
from messaging.consumer.topic_ids import TopicIds
from messaging.dead_letter import PRODUCER_MAX_MESSAGE_BYTES, DeadLetterPublisher
from messaging.dead_letter_spool import DeadLetterSpool
from messaging.topics import TopicSpec, create_topics_in_background, ensure_topics
from observability.metrics import Metrics
from outbox.relay import OutboxRelay


def publisher(
    settings: EventSettings,
    service: Service,
    engine: Engine,
    table: Table,
    registry: SchemaRegistryClient,
    producer: Producer,
    metrics: Metrics | None = None,
    announce: Collection[str] = (),
) -> OutboxRelay:
    """The relay that publishes, from the outbox table on engine with producer, every event the topology says
    service produces (one codec per event type of each declared topic, picked by the row's event type); it
    checks the event schemas' registration every SCHEMA_CHECK_INTERVAL_SECONDS and observes its publish latency
    in metrics. Its log lines about a row carry the row's key under the topic's key field (orderId); the
    publication of the event types in announce is logged at INFO, of the others at DEBUG.
    With AUTO_REGISTER_SCHEMAS=false the codecs only look their schemas up, never register them.

    Raises ValueError when the topology declares no topic that service produces.
    """
    declarations = [declaration for declaration in TOPICS if declaration.producer == service]
    if not declarations:
        raise ValueError(f"{service.name} produces no declared topic")
    codecs = {}
    for declaration in declarations:
        topic = settings.topic(declaration).name
        codecs.update(event_codecs(registry, declaration, topic, auto_register=settings.auto_register_schemas))
    return OutboxRelay(
        engine,
        table,
        producer,
        codecs,
        registration_check_seconds=settings.schema_check_interval_seconds,
        metrics=metrics,
        log_keys={event.name: d.key for d in declarations for event in d.events},
        announce=announce,
    )


def subscriber(
    settings: EventSettings,
    declaration: TopicDeclaration,
    registry: SchemaRegistryClient,
    dispatcher: Dispatcher,
    *,
    group: str,
    client_id: str,
    dead_letter_client_id: str,
    spool: DeadLetterSpool,
    metrics: Metrics | None = None,
    **options: Any,
) -> ConsumerRuntime:
    """A consumer of declaration's topic in group, handing its events to dispatcher. Records it can never
    decode go to the topic's dead-letter topic (created from its spec when missing, whatever CREATE_TOPICS
    says), or to spool when that topic refuses them for good. The client ids name the consumer and the
    dead-letter producer to the broker. options: the ConsumerRuntime's (max_in_flight, watermark_interval...);
    topic ids are looked up on the same brokers unless options name another lookup. metrics: where the consumer
    counts processed records and the dead-letter publisher its copies."""
    topic = settings.topic(declaration)
    options.setdefault("topic_ids", TopicIds(settings))
    return ConsumerRuntime(
        functools.partial(make_consumer, settings, group, client_id),
        topic.name,
        codec_for(registry, declaration, topic.name),
        dead_letter_publisher(settings, declaration, dead_letter_client_id, spool, metrics),
        dispatcher,
        metrics=metrics,
        **options,
    )


def dead_letter_publisher(
    settings: EventSettings,
    declaration: TopicDeclaration,
    client_id: str,
    spool: DeadLetterSpool,
    metrics: Metrics | None = None,
) -> DeadLetterPublisher:
    """The publisher of declaration's dead-letter copies: a producer at librdkafka's default message.max.bytes
    (stated, so the copies are cut to the limit the producer really has), topic creation from the topology's
    spec, and spool for what the topic refuses for good; copies are counted in metrics."""
    topic = settings.topic(declaration)
    spec = TopicSpec(topic.dead_letter, declaration.dead_letter_partitions, settings.topic_retention_ms)
    return DeadLetterPublisher(
        make_producer(settings, client_id, **{"message.max.bytes": PRODUCER_MAX_MESSAGE_BYTES}),
        topic.dead_letter,
        DEAD_LETTER_HEADERS,
        max_message_bytes=PRODUCER_MAX_MESSAGE_BYTES,
        create_topic=functools.partial(ensure_topics, settings, [spec]),
        spool=spool,
        metrics=metrics,
    )


def create_topics(settings: EventSettings, stopping: threading.Event) -> None:
    """Unless CREATE_TOPICS is off, create every topic of the topology in the background as soon as Kafka
    answers (until stopping is set)."""
    if settings.create_topics:
        create_topics_in_background(settings, settings.topic_specs(), stopping)
