"""Reading Kafka topics without joining a consumer group or committing anything: every partition is assigned by
hand (no group membership, no group offsets), from the first offset or from a chosen one, and reading can stop
at the ends the partitions had when it started."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from messaging.clients import make_consumer
from messaging.settings import KafkaSettings

log = logging.getLogger(__name__)

# How long a reader waits for its topics to exist before reading, in seconds.
TOPIC_WAIT_S = 30.0


@dataclass(frozen=True)
class OffsetRange:
    """Which records of each partition to read: offsets first..last, both inclusive (None: from the oldest record
    kept, up to the last one written), of the partitions numbered in partitions (None: every partition)."""

    first: int | None = None
    last: int | None = None
    partitions: frozenset[int] | None = None


class TopicReader:
    """One consumer assigned every partition of topics from the first offset; close() when done.

    Three ways to read: poll() what has arrived (repeatedly, while following a run), read_until() a
    condition holds, read_to_end() up to the end the topics had when it was called. The consumer is
    messaging.clients' (manual commits only) under a group id of its own that never commits, so reading
    leaves no offsets behind and moves no one else's. topic_wait: how long to wait for the topics to exist.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        client_id: str = "topic-reader",
        *,
        topic_wait: float = TOPIC_WAIT_S,
    ) -> None:
        self.topics = list(topics)
        self.topic_wait = topic_wait
        self._consumer = make_consumer(
            settings,
            f"{client_id}-{uuid.uuid4().hex}",
            client_id,
            **{"fetch.wait.max.ms": 100, "enable.partition.eof": True},
        )
        self._partitions: list[TopicPartition] | None = None  # every partition of topics, once all exist
        self._missing = ""  # why the topics were not found at the last look
        self._assigned = False

    def partitions(self) -> list[TopicPartition] | None:
        """Every partition of the topics (one metadata request per topic until found); None while one is
        missing or the broker does not answer."""
        if self._partitions is not None:
            return self._partitions
        partitions = []
        for topic in self.topics:
            try:
                meta = self._consumer.list_topics(topic, timeout=5).topics.get(topic)
            except Exception as exc:  # the broker is not answering (yet)
                self._missing = f"the broker did not answer: {exc}"
                return None
            if meta is None or meta.error is not None or not meta.partitions:
                self._missing = f"topic {topic} does not exist"
                return None
            partitions += [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        self._partitions = partitions
        return partitions

    def assign(self) -> bool:
        """Assign every partition from the beginning if all topics exist (unless already assigned); whether it is."""
        if self._assigned:
            return True
        partitions = self.partitions()
        if partitions is None:
            return False
        self._consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
        self._assigned = True
        return True

    def wait_partitions(self, timeout: float | None = None) -> list[TopicPartition]:
        """partitions(), asked again every 0.1 s until the topics exist; TimeoutError naming why after timeout
        seconds (default topic_wait)."""
        deadline = time.monotonic() + (self.topic_wait if timeout is None else timeout)
        while (partitions := self.partitions()) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topics {', '.join(self.topics)} not found: {self._missing}")
            time.sleep(0.1)
        return partitions

    def wait_assigned(self, timeout: float | None = None) -> None:
        """assign(), once the topics exist; TimeoutError after timeout seconds (default topic_wait)."""
        self.wait_partitions(timeout)
        self.assign()

    def poll(self, seconds: float) -> list[Message]:
        """The records that arrive within seconds; returns early once a fetch comes back empty (caught up).

        Nothing while the topics do not exist yet. Records with an error are skipped (logged unless EOF).
        """
        if not self.assign():
            return []
        records, _ = self._consume(seconds)
        return records

    def read_until(self, stop: Callable[[list[Message]], bool], timeout: float) -> list[Message]:
        """Every record from the beginning until stop(records) is true or timeout seconds have passed.

        Raises TimeoutError when the topics do not exist within topic_wait seconds.
        """
        self.wait_assigned()
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop(records):
            records += self.poll(0.5)
        return records

    def read_to_end(self, timeout: float = 120.0, offsets: OffsetRange = OffsetRange()) -> list[Message]:
        """Every record in offsets, up to the end offsets the partitions had when this was called.

        Each partition is read from offsets.first (or its oldest record) and done once a record at or past
        offsets.last or its end offset arrived, or the broker reported the end of the partition (so a gap at
        the end, such as a transaction marker, does not hold it up). Raises TimeoutError when the topics do not
        exist within topic_wait seconds or are not read in timeout seconds.
        """
        partitions = self.wait_partitions()
        deadline = time.monotonic() + timeout
        remaining: dict[tuple[str, int], int] = {}  # partition -> end offset still to reach
        starts: list[TopicPartition] = []
        for tp in partitions:
            if offsets.partitions is not None and tp.partition not in offsets.partitions:
                continue
            low, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30)
            start = low if offsets.first is None else max(low, offsets.first)
            end = high if offsets.last is None else min(high, offsets.last + 1)
            if end > start:
                remaining[(tp.topic, tp.partition)] = end
                starts.append(TopicPartition(tp.topic, tp.partition, start))
        self._consumer.assign(starts)
        self._assigned = True
        records: list[Message] = []
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(remaining)} not read to the end in {timeout}s")
            batch, ends = self._consume(0.5)
            for message in batch:
                partition = (message.topic(), message.partition())
                end = remaining.get(partition)
                if end is None or message.offset() >= end:
                    continue  # written after reading started, or past the range
                records.append(message)
                if message.offset() >= end - 1:
                    del remaining[partition]
            for partition, offset in ends:
                if offset >= remaining.get(partition, offset + 1):
                    del remaining[partition]
        return records

    def _consume(self, seconds: float) -> tuple[list[Message], list[tuple[tuple[str, int], int]]]:
        """Records that arrive within seconds (early out once a fetch brings no record), and the partitions
        whose end the broker reported, with the end offset."""
        records: list[Message] = []
        ends: list[tuple[tuple[str, int], int]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self._consumer.consume(2000, timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            arrived = len(records)
            for message in messages:
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends.append(((message.topic(), message.partition()), message.offset()))
                else:
                    log.warning("reader error: %s", error)
            if len(records) == arrived:
                break  # caught up: nothing but partition ends (or nothing at all) came back
        return records, ends

    def close(self) -> None:
        """Leave the broker (the reader cannot be used afterwards)."""
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
