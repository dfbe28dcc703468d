"""Reading Kafka topics from the beginning, without joining a consumer group or committing anything."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from harness.waiting import poll

log = logging.getLogger(__name__)

# How long a reader waits for its topics to exist before reading.
TOPIC_WAIT_S = 30.0


class TopicReader:
    """One consumer assigned every partition of topics from the first offset; close() when done.

    Three ways to read: poll() what has arrived (repeatedly, while following a run), read_until() a
    condition holds, read_to_end() up to the end the topics had when it was called.
    """

    def __init__(self, bootstrap_servers: str, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"harness-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            }
        )
        self._partitions: list[TopicPartition] | None = None

    def assign(self) -> bool:
        """Assign every partition from the beginning if all topics exist (one metadata request); whether it did."""
        if self._partitions is not None:
            return True
        partitions = []
        for topic in self.topics:
            try:
                meta = self._consumer.list_topics(topic, timeout=5).topics.get(topic)
            except Exception:  # the broker is not answering yet
                return False
            if meta is None or meta.error is not None or not meta.partitions:
                return False
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        self._consumer.assign(partitions)
        self._partitions = partitions
        return True

    def wait_assigned(self, timeout: float = TOPIC_WAIT_S) -> None:
        """assign(), retried until the topics exist; TimeoutError after timeout seconds."""
        if not poll(self.assign, timeout, interval=0.1):
            raise TimeoutError(f"topics {', '.join(self.topics)} not found within {timeout:g}s")

    def poll(self, seconds: float) -> list[Message]:
        """The records that arrive within seconds; returns early once a fetch comes back empty (caught up).

        Nothing while the topics do not exist yet. Records with an error are skipped (logged unless EOF).
        """
        if not self.assign():
            return []
        records: list[Message] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self._consumer.consume(2000, timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            if not messages:
                break
            for message in messages:
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.code() != KafkaError._PARTITION_EOF:
                    log.warning("reader error: %s", error)
        return records

    def read_until(self, stop: Callable[[list[Message]], bool], timeout: float) -> list[Message]:
        """Every record from the beginning until stop(records) is true or timeout seconds have passed.

        Raises TimeoutError when the topics do not exist within TOPIC_WAIT_S.
        """
        self.wait_assigned()
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop(records):
            records += self.poll(0.5)
        return records

    def read_to_end(self, timeout: float = 120.0) -> list[Message]:
        """Every record from the beginning up to the end offsets the partitions had when this was called.

        Raises TimeoutError when the topics do not exist within TOPIC_WAIT_S or are not read in timeout seconds.
        """
        self.wait_assigned()
        assert self._partitions is not None
        deadline = time.monotonic() + timeout
        remaining: dict[tuple[str, int], int] = {}  # partition -> end offset still to reach
        for tp in self._partitions:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30)
            if high > low:
                remaining[(tp.topic, tp.partition)] = high
        records: list[Message] = []
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(remaining)} not read to the end in {timeout}s")
            for message in self.poll(0.5):
                partition = (message.topic(), message.partition())
                end = remaining.get(partition)
                if end is None or message.offset() >= end:
                    continue  # written after reading started
                records.append(message)
                if message.offset() >= end - 1:
                    del remaining[partition]
        return records

    def close(self) -> None:
        """Leave the broker (the reader cannot be used afterwards)."""
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_topic(bootstrap_servers: str, topic: str, stop: Callable[[list[Any]], bool], timeout: float) -> list[Message]:
    """Every record of topic from the beginning, until stop(records) or timeout seconds (see TopicReader)."""
    with TopicReader(bootstrap_servers, [topic]) as reader:
        return reader.read_until(stop, timeout)


def read_to_end(bootstrap_servers: str, topic: str, timeout: float = 120.0) -> list[Message]:
    """Every record of topic, from the beginning up to the end it had when reading started (see TopicReader)."""
    with TopicReader(bootstrap_servers, [topic]) as reader:
        return reader.read_to_end(timeout)
