"""The settings of the event topology: for every declared topic its name, dead-letter topic and partitions,
plus retention and whether topics are created at start-up; each read from the environment variable of the
upper-cased field name, the topic's TopicDeclaration.topic_env, dead_letter_env and partitions_env
(ORDER_EVENTS_TOPIC, ORDER_EVENTS_DLQ_TOPIC, ORDER_EVENTS_PARTITIONS, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, create_model

from events.topology import RETENTION_MS, TOPICS, TopicDeclaration
from messaging.settings import KafkaSettings
from messaging.topics import TopicSpec


def _topology_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for topic in TOPICS:
        event = topic.event.name
        fields[topic.topic_env.lower()] = (str, Field(topic.name, description=f"the topic of {event} events"))
        fields[topic.dead_letter_env.lower()] = (
            str,
            Field(topic.dead_letter, description=f"where records of the {event} topic that can never be processed go"),
        )
        fields[topic.partitions_env.lower()] = (
            int,
            Field(topic.partitions, description=f"partitions of the {event} topic when it is created"),
        )
    return fields


# One field per topic and kind, made from the topology, so a new topic needs no settings edit.
_TopologyFields = create_model("_TopologyFields", __base__=KafkaSettings, **_topology_fields())


@dataclass(frozen=True)
class Topic:
    """A declared topic with the names and partitions this deployment gives it."""

    declaration: TopicDeclaration
    name: str
    dead_letter: str
    partitions: int


class EventSettings(_TopologyFields):
    """Kafka, the registry and every topic of the topology; the services' settings extend it."""

    topic_retention_ms: int = RETENTION_MS
    # Topics are created at start-up; a deployment that manages topics itself can switch this off.
    create_topics: bool = True
    # How often a publisher asks the registry whether its event schema is still registered with the id it
    # writes (seconds): a registry that lost its data or now refuses the schema is noticed within this time.
    schema_check_interval_seconds: float = 30.0
    # Whether publishers register their event schema themselves (local and dev). False (production): they only
    # look up the id of their exact schema under the subject, which the deploy pipeline registered with
    # `make schema-register`, and hold their events back (intake closed) while it is not there.
    auto_register_schemas: bool = True

    def topic(self, declaration: TopicDeclaration) -> Topic:
        """declaration with this deployment's topic name, dead-letter topic name and partitions."""
        return Topic(
            declaration,
            getattr(self, declaration.topic_env.lower()),
            getattr(self, declaration.dead_letter_env.lower()),
            getattr(self, declaration.partitions_env.lower()),
        )

    def topic_specs(self) -> list[TopicSpec]:
        """What to create: every event topic, then every dead-letter topic, each kept topic_retention_ms."""
        topics = [self.topic(declaration) for declaration in TOPICS]
        events = [TopicSpec(t.name, t.partitions, self.topic_retention_ms) for t in topics]
        dead_letters = [
            TopicSpec(t.dead_letter, t.declaration.dead_letter_partitions, self.topic_retention_ms) for t in topics
        ]
        return events + dead_letters
