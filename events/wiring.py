"""How a service publishes and consumes a declared topic: the plumbing built from the topology and the
settings, so each service's bootstrap names only its topics, its client ids and its handler."""

from __future__ import annotations

import functools
import threading
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine, Table

from events.codecs import codec_for
from events.settings import EventSettings
from events.topology import DEAD_LETTER_HEADERS, TopicDeclaration
from messaging.clients import make_consumer, make_producer
from messaging.consumer.dispatch import Dispatcher
from messaging.consumer.runtime import ConsumerRuntime
from messaging.consumer.topic_ids import TopicIds
from messaging.dead_letter import DeadLetterPublisher
from messaging.topics import create_topics_in_background
from outbox.relay import OutboxRelay


def publisher(
    settings: EventSettings,
    declaration: TopicDeclaration,
    engine: Engine,
    table: Table,
    registry: SchemaRegistryClient,
    producer: Producer,
) -> OutboxRelay:
    """The relay that publishes declaration's events from the outbox table on engine, with producer."""
    codec = codec_for(registry, declaration, settings.topic(declaration).name)
    return OutboxRelay(engine, table, producer, {declaration.event.name: codec})


def subscriber(
    settings: EventSettings,
    declaration: TopicDeclaration,
    registry: SchemaRegistryClient,
    dispatcher: Dispatcher,
    *,
    group: str,
    client_id: str,
    dead_letter_client_id: str,
    **options: Any,
) -> ConsumerRuntime:
    """A consumer of declaration's topic in group, handing its events to dispatcher; records it can never
    decode go to the topic's dead-letter topic. The client ids name the consumer and the dead-letter producer
    to the broker. options: the ConsumerRuntime's (max_in_flight, watermark_interval...); topic ids are looked
    up on the same brokers unless options name another lookup."""
    topic = settings.topic(declaration)
    options.setdefault("topic_ids", TopicIds(settings.kafka_bootstrap_servers))
    return ConsumerRuntime(
        functools.partial(make_consumer, settings, group, client_id),
        topic.name,
        codec_for(registry, declaration, topic.name),
        DeadLetterPublisher(make_producer(settings, dead_letter_client_id), topic.dead_letter, DEAD_LETTER_HEADERS),
        dispatcher,
        **options,
    )


def create_topics(settings: EventSettings, stopping: threading.Event) -> None:
    """Unless CREATE_TOPICS is off, create every topic of the topology in the background as soon as Kafka
    answers (until stopping is set)."""
    if settings.create_topics:
        create_topics_in_background(settings.kafka_bootstrap_servers, settings.topic_specs(), stopping)
