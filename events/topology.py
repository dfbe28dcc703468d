"""The event topology, declared once: every topic, the event it carries, its key, dead-letter topic, registry
subject and compatibility, partitions, producer and consumer group, and the dead-letter header names.

Everything else reads it: the settings (one `<SETTING>_TOPIC`, `<SETTING>_DLQ_TOPIC` and `<SETTING>_PARTITIONS`
variable per topic, defaults from here), topic creation, the codecs, `make codegen` (models and AsyncAPI) and
`tools/schema_check.py`. Adding a topic or an event type means adding a TopicDeclaration to TOPICS (and its
Avro schema in schemas/avro/<EventName>.avsc).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from messaging.dead_letter_headers import DeadLetterHeaders

# The registry compatibility level of every subject: every version reads data written with every other, so
# producers and consumers deploy in either order (docs/adr/0001-event-schema-compatibility.md).
COMPATIBILITY = "FULL_TRANSITIVE"
# How long every topic keeps records, unless TOPIC_RETENTION_MS says otherwise: 7 days, in ms.
RETENTION_MS = 604_800_000
# Subject name strategies the topology knows, by the name Confluent's serializers give them.
TOPIC_NAME_STRATEGY = "TopicNameStrategy"


def subject_name(topic: str, strategy: str = TOPIC_NAME_STRATEGY) -> str:
    """The registry subject of the values on topic under strategy (TopicNameStrategy: `<topic>-value`).

    Raises ValueError for a strategy the topology does not support.
    """
    if strategy != TOPIC_NAME_STRATEGY:
        raise ValueError(f"subject name strategy {strategy} is not supported")
    return f"{topic}-value"


@dataclass(frozen=True)
class Service:
    """A service taking part in the topology: its name, and the consumer group it consumes with."""

    name: str
    group: str


@dataclass(frozen=True)
class EventType:
    """An event type: name is its Avro record name, the generated model's class name (contract_models.events)
    and the `event_type` of its outbox rows; its schema is schemas/avro/<name>.avsc.

    rules: `module:function` checking a decoded event beyond its schema (raises ValueError), or None.
    """

    name: str
    rules: str | None = None

    @property
    def schema_file(self) -> str:
        """The file of its Avro schema in schemas/avro/."""
        return f"{self.name}.avsc"

    @property
    def module_name(self) -> str:
        """snake_case of name: the prefix of its generated constants (`<MODULE_NAME>_SCHEMA`)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


@dataclass(frozen=True)
class TopicDeclaration:
    """One event topic and its dead-letter topic.

    setting: the settings prefix; the environment variables topic_env, dead_letter_env and partitions_env
    (`<SETTING>_TOPIC`, `<SETTING>_DLQ_TOPIC`, `<SETTING>_PARTITIONS`) override name, dead_letter and
    partitions. key: the event field whose text is every record's key (key_doc describes it). producer publishes
    the event through its outbox; consumer reads it in its own group and dead-letters what it can never process
    to dead_letter (dead_letter_partitions).
    """

    setting: str
    name: str
    event: EventType
    key: str
    key_doc: str
    producer: Service
    consumer: Service
    dead_letter: str
    partitions: int = 1
    dead_letter_partitions: int = 1
    subject_strategy: str = TOPIC_NAME_STRATEGY
    compatibility: str = COMPATIBILITY

    def __post_init__(self) -> None:
        subject_name(self.name, self.subject_strategy)  # raises for a strategy the topology does not know

    @property
    def topic_env(self) -> str:
        """The environment variable naming the topic (`<SETTING>_TOPIC`, e.g. ORDER_EVENTS_TOPIC); lower-cased,
        the field of events.settings.EventSettings that reads it."""
        return f"{self.setting.upper()}_TOPIC"

    @property
    def dead_letter_env(self) -> str:
        """The environment variable naming the dead-letter topic (`<SETTING>_DLQ_TOPIC`); lower-cased, its
        settings field."""
        return f"{self.setting.upper()}_DLQ_TOPIC"

    @property
    def partitions_env(self) -> str:
        """The environment variable giving the partitions the topic is created with (`<SETTING>_PARTITIONS`);
        lower-cased, its settings field."""
        return f"{self.setting.upper()}_PARTITIONS"

    def subject(self, topic: str | None = None) -> str:
        """The registry subject of the values on topic (default: this topic's default name)."""
        return subject_name(topic or self.name, self.subject_strategy)

    def key_of(self, event: Any) -> str:
        """The record key of event: its key field as text."""
        return str(getattr(event, self.key))


ORDER_SERVICE = Service("Order Service", "order-service")
FULFILLMENT_SERVICE = Service("Fulfillment Service", "fulfillment-service")

ORDER_EVENTS = TopicDeclaration(
    setting="order_events",
    name="order-events",
    event=EventType("OrderCreated", rules="contracts.order_rules:check_order_created"),
    key="orderId",
    key_doc="The orderId of the order the record is about.",
    producer=ORDER_SERVICE,
    consumer=FULFILLMENT_SERVICE,
    dead_letter="order-events.dlq",
)
FULFILLMENT_EVENTS = TopicDeclaration(
    setting="fulfillment_events",
    name="fulfillment-events",
    event=EventType("FulfillmentStatusChanged", rules="contracts.fulfillment_rules:check_status_changed"),
    key="orderId",
    key_doc="The orderId of the order the record is about.",
    producer=FULFILLMENT_SERVICE,
    consumer=ORDER_SERVICE,
    dead_letter="fulfillment-events.dlq",
)
# Every topic, in the order they are created and documented.
TOPICS: tuple[TopicDeclaration, ...] = (ORDER_EVENTS, FULFILLMENT_EVENTS)

# Kafka Connect's dead-letter header names (`errors.deadletterqueue.context.headers.enable`) for what Connect
# has a name for, so its tools and anyone who knows the convention read them; this project's extras under
# DEAD_LETTER_EXTRAS_PREFIX.
CONNECT_ERRORS_PREFIX = "__connect.errors."
DEAD_LETTER_EXTRAS_PREFIX = "__orderprocessing.dlq."
DEAD_LETTER_HEADERS = DeadLetterHeaders(
    original_topic=f"{CONNECT_ERRORS_PREFIX}topic",
    original_partition=f"{CONNECT_ERRORS_PREFIX}partition",
    original_offset=f"{CONNECT_ERRORS_PREFIX}offset",
    error_type=f"{CONNECT_ERRORS_PREFIX}exception.class.name",
    error_message=f"{CONNECT_ERRORS_PREFIX}exception.message",
    original_timestamp=f"{DEAD_LETTER_EXTRAS_PREFIX}original.timestamp",
    dead_lettered_at=f"{DEAD_LETTER_EXTRAS_PREFIX}dead-lettered.at",
    original_size=f"{DEAD_LETTER_EXTRAS_PREFIX}original.size",
    truncated=f"{DEAD_LETTER_EXTRAS_PREFIX}truncated",
)
DEAD_LETTER_HEADER_DOCS = {
    DEAD_LETTER_HEADERS.original_topic: "Topic the record was read from.",
    DEAD_LETTER_HEADERS.original_partition: "Its partition, in decimal.",
    DEAD_LETTER_HEADERS.original_offset: "Its offset, in decimal.",
    DEAD_LETTER_HEADERS.error_type: "Why the record could not be processed, e.g. IncompatibleWriterSchema, "
    "UnknownSchemaId, InvalidWireFormat, InvalidEvent.",
    DEAD_LETTER_HEADERS.error_message: "The error in detail (at most 2,000 characters).",
    DEAD_LETTER_HEADERS.original_timestamp: "Its timestamp, epoch milliseconds in decimal.",
    DEAD_LETTER_HEADERS.dead_lettered_at: "When it was dead-lettered, epoch milliseconds in decimal.",
    DEAD_LETTER_HEADERS.original_size: "The size of the original record's value in bytes, in decimal.",
    DEAD_LETTER_HEADERS.truncated: "`true` when the value (or key) was cut so the copy fits the producer's "
    "message.max.bytes; the original is the record at topic, partition and offset. `false` otherwise.",
}
