"""What the repair commands act on: the deployment's topics from the environment (events.settings), dead-letter
topics read without a consumer group (messaging.topic_reader), events decoded with the registry
(events.codecs), an idempotent producer (messaging.clients) and a service's spool table."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message, Producer

from events.codecs import codec_for
from events.settings import EventSettings, Topic
from events.topology import TOPICS
from messaging.avro_codec import EventCodec
from messaging.clients import make_producer
from messaging.registry import registry_client
from messaging.topic_reader import OffsetRange, TopicReader
from persistence.engine import make_engine
from repair.dead_letters import DeadLetter, Decoder, Delivery, Outgoing, Sender
from repair.spool import Spool, SpoolTable

CLIENT_ID = "order-repair"
# How long reading waits for a dead-letter topic to show up (a missing one is reported after this), seconds.
TOPIC_WAIT_S = 10.0
# How long reading a topic to its end may take, seconds.
READ_TIMEOUT_S = 120.0
# How long a replay waits for the broker to confirm what it produced, seconds (the producer's
# message.timeout.ms is 30 s, so a record the broker never takes is reported before this).
SEND_TIMEOUT_S = 60.0


class Environment(Protocol):
    """The deployment the commands act on."""

    settings: EventSettings

    def read(self, topic: str, offsets: OffsetRange) -> list[DeadLetter]:
        """The records of topic within offsets, up to the partition ends at the time of the call. Raises
        TimeoutError when the topic does not exist (or the broker does not answer)."""
        ...

    def decoder(self) -> Decoder:
        """Decodes values as the events of this deployment's topics."""
        ...

    def sender(self) -> Sender:
        """An idempotent producer that waits for every delivery."""
        ...

    def spool(self, database_url: str) -> Spool:
        """The spool table of the database at database_url."""
        ...


def topics(settings: EventSettings) -> list[Topic]:
    """Every topic of the topology with this deployment's names."""
    return [settings.topic(declaration) for declaration in TOPICS]


def source_topic(settings: EventSettings, dead_letter_topic: str) -> str | None:
    """The topic whose consumer dead-letters to dead_letter_topic, None when no topic of the deployment does."""
    return next((t.name for t in topics(settings) if t.dead_letter == dead_letter_topic), None)


def dead_letter_of(message: Message) -> DeadLetter:
    """The DeadLetter of a record read from a dead-letter topic."""
    kind, stamp = message.timestamp()
    return DeadLetter(
        topic=message.topic() or "",
        key=message.key(),
        value=message.value(),
        headers=tuple((name, value or b"") for name, value in message.headers() or []),
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else stamp,
    )


class RegistryDecoder:
    """Decodes with each topic's codec (events.codecs.codec_for: the committed schema as reader, the writer
    schema from the registry, the event's rules and key check)."""

    def __init__(self, settings: EventSettings) -> None:
        self._settings = settings
        self._registry = registry_client(settings)
        self._codecs: dict[str, EventCodec[Any]] = {}

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> dict[str, Any]:
        """The event on topic as JSON (decimals as strings, times ISO 8601). Raises LookupError when topic is
        not a topic of this deployment, PoisonRecord for a record that can never be processed,
        RegistryUnavailable while the registry does not answer."""
        codec = self._codecs.get(topic)
        if codec is None:
            declared = next((t for t in topics(self._settings) if t.name == topic), None)
            if declared is None:
                raise LookupError(f"{topic} is not an event topic of this deployment")
            codec = self._codecs[topic] = codec_for(self._registry, declared.declaration, topic)
        event = codec.decode(value, key)
        dumped: dict[str, Any] = event.model_dump(mode="json")
        return dumped


class KafkaSender:
    """Produces with messaging.clients' idempotent producer (acks=all) and waits for every delivery."""

    def __init__(self, producer: Producer, timeout: float = SEND_TIMEOUT_S) -> None:
        self._producer = producer
        self._timeout = timeout

    def send(self, records: Sequence[Outgoing]) -> list[Delivery]:
        """One Delivery per record, in order: where it was written, or why not (refused, or not confirmed
        within the timeout)."""
        deliveries: list[Delivery | None] = [None] * len(records)

        def report(index: int) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(error: KafkaError | None, message: Message) -> None:
                deliveries[index] = (
                    Delivery(None, message.partition(), message.offset())
                    if error is None
                    else Delivery(f"{error.name()}: {error.str()}")
                )

            return on_delivery

        for index, record in enumerate(records):
            try:
                self._producer.produce(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=list(record.headers),
                    on_delivery=report(index),
                )
            except (KafkaException, BufferError) as exc:
                deliveries[index] = Delivery(f"refused by the producer: {exc}")
            self._producer.poll(0)
        deadline = time.monotonic() + self._timeout
        while self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic()))) and time.monotonic() < deadline:
            pass
        return [d or Delivery(f"not confirmed within {self._timeout:g}s") for d in deliveries]


class KafkaEnvironment:
    """The deployment named by the environment's settings (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, the
    topic variables); connects only when a command needs it."""

    def __init__(self, settings: EventSettings) -> None:
        self.settings = settings

    def read(self, topic: str, offsets: OffsetRange) -> list[DeadLetter]:
        """See Environment.read: a TopicReader (no group offsets) that stops at the partition ends."""
        with TopicReader(self.settings, [topic], CLIENT_ID, topic_wait=TOPIC_WAIT_S) as reader:
            return [dead_letter_of(message) for message in reader.read_to_end(READ_TIMEOUT_S, offsets)]

    def decoder(self) -> Decoder:
        """A RegistryDecoder on SCHEMA_REGISTRY_URL."""
        return RegistryDecoder(self.settings)

    def sender(self) -> Sender:
        """A KafkaSender on an idempotent producer."""
        return KafkaSender(make_producer(self.settings, CLIENT_ID))

    def spool(self, database_url: str) -> Spool:
        """The spool table of the service database at database_url (SQLite or PostgreSQL URL)."""
        return SpoolTable(make_engine(database_url))
