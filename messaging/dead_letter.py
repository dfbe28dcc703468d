"""Dead-letter routing: a record that can never be processed is parked with the reason in its headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger(__name__)


class DeadLetterError(Exception):
    """The dead-letter topic did not confirm the record; the source offset must not be committed."""


def dead_letter_headers(message: Message, error_type: str, error_message: str) -> list[tuple[str, bytes]]:
    _, timestamp = message.timestamp()
    return [
        ("error.type", error_type.encode()),
        ("error.message", error_message[:2000].encode()),
        ("original.topic", (message.topic() or "").encode()),
        ("original.partition", str(message.partition()).encode()),
        ("original.offset", str(message.offset()).encode()),
        ("original.timestamp", str(timestamp).encode()),
        ("dead-lettered.at", str(int(time.time() * 1000)).encode()),
    ]


class DeadLetterPublisher:
    """Copies poison records, bytes untouched, to a dead-letter topic and waits for the broker's ack."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    def publish(self, message: Message, error_type: str, error_message: str, timeout: float = 30.0) -> None:
        self.publish_all([(message, error_type, error_message)], timeout)

    def publish_all(self, records: Sequence[tuple[Message, str, str]], timeout: float = 30.0) -> None:
        """Dead-letter (message, error type, error message) records and wait once for all their acks.

        One wait per batch, not per record: a burst of poison records must not stall the valid ones.
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
                headers=dead_letter_headers(message, error_type, error_message),
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
