"""Dead-letter routing: a record that can never be processed is parked with the reason in its headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from messaging.dead_letter_headers import DeadLetterHeaders

log = logging.getLogger(__name__)

# Longest error message a dead-letter header carries (characters).
MAX_ERROR_MESSAGE = 2000


class DeadLetterError(Exception):
    """The dead-letter topic did not confirm the record; the source offset must not be committed."""


def dead_letter_headers(
    names: DeadLetterHeaders, message: Message, error_type: str, error_message: str
) -> list[tuple[str, bytes]]:
    """The headers (name, UTF-8 value) that park message for error_type with error_message, named by names."""
    _, timestamp = message.timestamp()
    return [
        (names.error_type, error_type.encode()),
        (names.error_message, error_message[:MAX_ERROR_MESSAGE].encode()),
        (names.original_topic, (message.topic() or "").encode()),
        (names.original_partition, str(message.partition()).encode()),
        (names.original_offset, str(message.offset()).encode()),
        (names.original_timestamp, str(timestamp).encode()),
        (names.dead_lettered_at, str(int(time.time() * 1000)).encode()),
    ]


class DeadLetterPublisher:
    """Copies poison records, bytes untouched, to a dead-letter topic and waits for the broker's ack.

    headers: the names of the headers the reason and origin go in.
    """

    def __init__(self, producer: Producer, topic: str, headers: DeadLetterHeaders) -> None:
        self._producer = producer
        self._headers = headers
        self.topic = topic

    def publish_all(self, records: Sequence[tuple[Message, str, str]], timeout: float = 30.0) -> None:
        """Dead-letter (message, error type, error message) records and wait once for all their acks.

        One wait per batch, not per record: a burst of poison records must not stall the valid ones.
        Raises DeadLetterError when any record was not confirmed within timeout seconds.
        """
        if not records:
            return
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        for message, error_type, error_message in records:
            self._producer.produce(
                self.topic,
                key=message.key(),
                value=message.value(),
                headers=dead_letter_headers(self._headers, message, error_type, error_message),
                on_delivery=on_delivery,
            )
        remaining = self._producer.flush(timeout)
        if remaining or errors:
            raise DeadLetterError(f"dead-letter publish to {self.topic} failed: {errors or 'timeout'}")
        for message, error_type, error_message in records:
            log.warning(
                "dead-lettered %s[%s]@%s: %s: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                error_type,
                error_message[:200],
            )
