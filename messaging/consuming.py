"""Consumer building blocks: decode with dead-lettering, rewind on transient failures, commit after work.

A poison record goes to the dead-letter topic and its offset counts as done; a record that failed only
because the registry is away is not done: the partition is rewound to it and read again later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from messaging.avro_codec import EventCodec, PoisonRecord, RegistryUnavailable
from messaging.dead_letter import DeadLetterPublisher
from messaging.offsets import CommitLog

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True)
class Decoded(Generic[E]):
    """A consumed record and its event; event is None for a record that was dead-lettered."""

    message: Message
    event: E | None


def decode_batch(
    messages: Sequence[Message], codec: EventCodec[Any], dead_letters: DeadLetterPublisher
) -> tuple[list[Decoded[Any]], list[Message]]:
    """Decode in order. Returns the records handled (decoded or dead-lettered) and, when the registry
    could not be reached, the records from that point on, which must be read again."""
    done: list[Decoded[Any]] = []
    poison: list[tuple[Message, str, str]] = []
    again: list[Message] = []
    for index, message in enumerate(messages):
        try:
            event = codec.decode(message.value())
        except PoisonRecord as exc:
            poison.append((message, exc.kind, exc.message))
            done.append(Decoded(message, None))
        except RegistryUnavailable as exc:
            log.warning("schema registry unavailable, will read %s again: %s", message.topic(), exc)
            again = list(messages[index:])
            break
        else:
            done.append(Decoded(message, event))
    # All of the batch's poison records in one round trip; raises (nothing counts as done) if any failed.
    dead_letters.publish_all(poison)
    return done, again


def poll_batch(consumer: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Wait up to timeout for the first record, then take what else is already fetched without waiting.

    consume(n, timeout) alone waits for n records or the whole timeout, which at low rates delays every
    record by the timeout.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_records - 1, timeout=0)]


def rewind(consumer: Consumer, messages: Sequence[Message]) -> None:
    """Seek each partition back to its first record in messages, so they are consumed again."""
    first: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        first[key] = min(first.get(key, message.offset()), message.offset())
    for (topic, partition), offset in first.items():
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except Exception:  # partition revoked meanwhile: its new owner starts from the committed offset
            log.info("could not rewind %s[%s] to %s", topic, partition, offset, exc_info=True)


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after messages: one past the last of each partition."""
    last: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        last[key] = max(last.get(key, -1), message.offset())
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


class BatchConsumerWorker(threading.Thread):
    """Consumes batches, hands decoded records to handle_batch, commits once it returned.

    handle_batch must make its work durable before returning (a database commit); if it raises,
    the batch is read again after a pause, so it must also be idempotent.
    """

    def __init__(
        self,
        connect: Callable[..., Consumer],
        topic: str,
        codec: EventCodec[Any],
        dead_letters: DeadLetterPublisher,
        handle_batch: Callable[[list[Decoded[Any]]], None],
        *,
        name: str,
        batch_size: int = 500,
    ) -> None:
        super().__init__(name=name, daemon=True)
        # Commits are asynchronous (a synchronous one blocks without limit on a hung broker); their
        # reports come back to _on_commit, and failed ones are sent again on the next round.
        self._consumer = connect(on_commit=self._on_commit)
        self._retry: list[TopicPartition] = []
        self._commit_log = CommitLog()
        self._topic = topic
        self._codec = codec
        self._dead_letters = dead_letters
        self._handle_batch = handle_batch
        self._batch_size = batch_size
        self._stop_event = threading.Event()
        self.processed = 0
        self.last_error: str | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self.join(timeout)

    def run(self) -> None:
        self._consumer.subscribe([self._topic])
        backoff = 0.0
        try:
            while not self._stop_event.is_set():
                if backoff:
                    self._stop_event.wait(backoff)
                messages = poll_batch(self._consumer, self._batch_size, timeout=0.5)
                if self._retry:
                    retry, self._retry = self._retry, []
                    self._commit(retry)
                records = [m for m in messages if not is_error_message(m)]
                if not records:
                    continue
                backoff = self._process(records, backoff)
        finally:
            self._consumer.close()

    def _process(self, records: list[Message], backoff: float) -> float:
        try:
            done, again = decode_batch(records, self._codec, self._dead_letters)
            if done:
                self._handle_batch(done)
                self._commit(next_offsets([d.message for d in done]))
                self.processed += len(done)
        except Exception as exc:
            log.exception("%s: batch failed, reading it again", self.name)
            self.last_error = str(exc)
            rewind(self._consumer, records)
            return min(max(backoff * 2, 0.2), 5.0)
        if again:
            rewind(self._consumer, again)
            return min(max(backoff * 2, 0.2), 5.0)
        self.last_error = None
        return 0.0

    def _commit(self, offsets: list[TopicPartition]) -> None:
        self._commit_log.sent(offsets)
        self._consumer.commit(offsets=offsets, asynchronous=True)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        report = self._commit_log.report(error, partitions)
        if report.error:
            log.warning("%s: offset commit failed, sending it again: %s", self.name, report.error)
        self._retry += report.again


def is_error_message(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", error)
    return True
