"""The decode step of consumption: poll, decode with dead-lettering, and rewind what must be read again.

A poison record goes to the dead-letter topic and its offset counts as done; a record that failed only
because the registry is away is not done: its partition is rewound to it and it is read again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from messaging.avro_codec import PoisonRecord, RegistryUnavailable
from messaging.dead_letter import DeadLetterPublisher
from messaging.topic_codec import RecordDecoder

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True)
class Decoded(Generic[E]):
    """A consumed record and its event; event is None for a record that was dead-lettered."""

    message: Message
    event: E | None


def decode_batch(
    messages: Sequence[Message], codec: RecordDecoder, dead_letters: DeadLetterPublisher
) -> tuple[list[Decoded[Any]], list[Message]]:
    """Decode messages in order, dead-lettering poison records in one round trip.

    Returns the records handled (decoded or dead-lettered) and, when the registry could not be reached, the
    records from that point on, which must be read again. Raises DeadLetterError (nothing counts as done)
    when the dead-letter topic did not confirm.
    """
    done: list[Decoded[Any]] = []
    poison: list[tuple[Message, str, str]] = []
    again: list[Message] = []
    for index, message in enumerate(messages):
        try:
            event = codec.decode(message.value(), message.key())
        except PoisonRecord as exc:
            poison.append((message, exc.kind, exc.message))
            done.append(Decoded(message, None))
        except RegistryUnavailable as exc:
            log.warning("schema registry unavailable, will read %s again: %s", message.topic(), exc)
            again = list(messages[index:])
            break
        else:
            done.append(Decoded(message, event))
    dead_letters.publish_all(poison)
    return done, again


def poll_batch(
    consumer: Consumer,
    max_records: int,
    timeout: float,
    on_offset_reset: Callable[[Message], None] | None = None,
) -> list[Message]:
    """Wait up to timeout seconds for the first record, then take what else is already fetched without waiting
    (up to max_records in all). Error events (partition EOF, broker errors) are dropped, the latter logged.

    With auto.offset.reset=error, librdkafka reports a partition whose position the broker does not have
    (offset out of range) or that has no committed offset as an error event with code
    KafkaError._AUTO_OFFSET_RESET (its topic, partition and, when out of range, the offset asked for) and
    stops fetching it; such events go to on_offset_reset, which must set the partition's position again.

    consume(n, timeout) alone waits for n records or the whole timeout, which at low rates delays every
    record by the timeout.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    records = []
    for message in (first, *consumer.consume(max_records - 1, timeout=0)):
        error = message.error()
        if error is None:
            records.append(message)
        elif error.code() == KafkaError._AUTO_OFFSET_RESET and on_offset_reset is not None:
            on_offset_reset(message)
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", error)
    return records


def first_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    """{(topic, partition): the lowest offset among messages of that partition}."""
    first: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        first[key] = min(first.get(key, message.offset()), message.offset())
    return first


def rewind(consumer: Consumer, messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    """Seek each partition of messages back to its first record there, so they are consumed again.

    Returns the offsets sought, as first_offsets. A partition revoked meanwhile is skipped: its new owner
    starts from the committed offset.
    """
    first = first_offsets(messages)
    for (topic, partition), offset in first.items():
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except Exception:
            log.info("could not rewind %s[%s] to %s", topic, partition, offset, exc_info=True)
    return first
