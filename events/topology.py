"""The event topology, declared once: every topic, the event it carries, its key, dead-letter topic, registry
subject and compatibility, partitions, producer and consumer group, and the dead-letter header names.

Everything else reads it: the settings (one `<SETTING>_TOPIC`, `<SETTING>_DLQ_TOPIC` and `<SETTING>_PARTITIONS`
variable per topic, defaults from here), topic creation, the codecs, `make codegen` (models and AsyncAPI) and
`tools/schema_check.py`. Adding a topic means adding a TopicDeclaration to TOPICS, adding an event type adding
an EventType to its topic's events (a topic of several types needs TopicRecordNameStrategy), each with its Avro
schema in schemas/avro/<EventName>.avsc.
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
# Subject name strategies the topology knows, by the name Confluent's serializers give them
# (io.confluent.kafka.serializers.subject.*): one subject per topic, or one per topic and record type.
TOPIC_NAME_STRATEGY = "TopicNameStrategy"
TOPIC_RECORD_NAME_STRATEGY = "TopicRecordNameStrategy"
# The Avro namespace of every event record (schemas/avro/*.avsc).
EVENT_NAMESPACE = "orderprocessing.events"


def subject_name(topic: str, strategy: str = TOPIC_NAME_STRATEGY, record_name: str | None = None) -> str:
    """The registry subject of the values on topic under strategy: TopicNameStrategy `<topic>-value`,
    TopicRecordNameStrategy `<topic>-<record full name>` (record_name, e.g. orderprocessing.events.OrderCreated;
    Confluent's serializers name subjects so).

    Raises ValueError for a strategy the topology does not support, or TopicRecordNameStrategy without record_name.
    """
    if strategy == TOPIC_NAME_STRATEGY:
        return f"{topic}-value"
    if strategy == TOPIC_RECORD_NAME_STRATEGY:
        if not record_name:
            raise ValueError(f"{strategy} needs the record name")
        return f"{topic}-{record_name}"
    raise ValueError(f"subject name strategy {strategy} is not supported")


@dataclass(frozen=True)
class Service:
    """A service taking part in the topology: its name, and the consumer group it consumes with."""

    name: str
    group: str


@dataclass(frozen=True)
class EventType:
    """An event type: name is its Avro record name, the generated model's class name (contract_models.events)
    and the `event_type` of its outbox rows; its schema is schemas/avro/<name>.avsc, in namespace.

    rules: `module:function` checking a decoded event beyond its schema (raises ValueError), or None.
    history_strategy: the subject name strategy its schema was registered under before the topic's current one
    (None: always the current one); the versions of that subject are registered, in order, under the current
    subject before the first write (see TopicDeclaration.history_subject), and the old subject is kept.
    """

    name: str
    rules: str | None = None
    namespace: str = EVENT_NAMESPACE
    history_strategy: str | None = None

    @property
    def full_name(self) -> str:
        """The Avro full name, e.g. orderprocessing.events.OrderCreated: what a writer schema names."""
        return f"{self.namespace}.{self.name}"

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
    partitions. events: the event types the topic carries, the first being the one it was made for; every
    event's key field is key, whose text is every record's key (key_doc describes it), so the events of one
    entity stay in order on one partition. producer publishes them through its outbox; consumer reads them in
    its own group and dead-letters what it can never process to dead_letter (dead_letter_partitions).
    subject_strategy: how each event type's registry subject is named (subject_name); a topic with several
    event types needs TopicRecordNameStrategy (one subject per type, each evolved on its own at compatibility).
    """

    setting: str
    name: str
    events: tuple[EventType, ...]
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
        if not self.events:
            raise ValueError(f"topic {self.name} declares no event type")
        if len(self.events) > 1 and self.subject_strategy == TOPIC_NAME_STRATEGY:
            raise ValueError(f"topic {self.name} carries several event types: one subject cannot hold them")
        for event in self.events:
            self.subject(event=event)  # raises for a strategy the topology does not know

    @property
    def event(self) -> EventType:
        """The event type the topic was made for (the first declared)."""
        return self.events[0]

    def event_named(self, name: str) -> EventType:
        """The declared event type called name. Raises KeyError when the topic does not carry it."""
        for event in self.events:
            if event.name == name:
                return event
        raise KeyError(f"topic {self.name} carries no {name}")

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

    def subject(self, topic: str | None = None, event: EventType | None = None) -> str:
        """The registry subject of event's values (default: the first event type) on topic (default: this
        topic's default name)."""
        return subject_name(topic or self.name, self.subject_strategy, (event or self.event).full_name)

    def history_subject(self, topic: str | None = None, event: EventType | None = None) -> str | None:
        """The subject event's schema was registered under before (its history_strategy's), whose versions
        are carried over to its current subject; None when it has always had its current subject."""
        event = event or self.event
        if event.history_strategy is None:
            return None
        old = subject_name(topic or self.name, event.history_strategy, event.full_name)
        return None if old == self.subject(topic, event) else old

    def key_of(self, event: Any) -> str:
        """The record key of event: its key field as text."""
        return str(getattr(event, self.key))


ORDER_SERVICE = Service("Order Service", "order-service")
FULFILLMENT_SERVICE = Service("Fulfillment Service", "fulfillment-service")

ORDER_EVENTS = TopicDeclaration(
    setting="order_events",
    name="order-events",
    events=(
        # Registered under order-events-value (TopicNameStrategy) until order-events carried a second type.
        EventType(
            "OrderCreated", rules="contracts.order_rules:check_order_created", history_strategy=TOPIC_NAME_STRATEGY
        ),
        EventType("OrderCancelled", rules="contracts.order_rules:check_order_cancelled"),
    ),
    key="orderId",
    key_doc="The orderId of the order the record is about.",
    producer=ORDER_SERVICE,
    consumer=FULFILLMENT_SERVICE,
    dead_letter="order-events.dlq",
    subject_strategy=TOPIC_RECORD_NAME_STRATEGY,
)
FULFILLMENT_EVENTS = TopicDeclaration(
    setting="fulfillment_events",
    name="fulfillment-events",
    events=(EventType("FulfillmentStatusChanged", rules="contracts.fulfillment_rules:check_status_changed"),),
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
