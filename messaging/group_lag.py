"""A consumer group's lag as the broker sees it: for the health endpoint and the tools that watch the system
(bench, chaos)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from messaging.consumer.start_offsets import PartitionView, start_offset
from messaging.consumer.topic_ids import TopicIds
from messaging.settings import KafkaSettings, kafka_client_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionLag:
    """One partition: the group's committed offset (None when it has none), the offset the group resumes at
    (the start-offset rule of messaging.consumer.start_offsets: the committed offset, or the partition's
    beginning when the committed offset is beyond the end or from an earlier incarnation of the topic), and
    the partition's end (high watermark)."""

    partition: int
    committed: int | None
    resume_at: int
    end: int

    @property
    def lag(self) -> int:
        """Records the group has not committed: end minus where it resumes."""
        return max(0, self.end - self.resume_at)


@dataclass(frozen=True)
class LagReading:
    """Every partition of the topic, read from the broker at one moment."""

    topic: str
    partitions: dict[int, PartitionLag]

    @property
    def total(self) -> int:
        """Records not committed, over all partitions."""
        return sum(p.lag for p in self.partitions.values())


class GroupLag:
    """High watermark minus committed offset of one consumer group on one topic, per partition, read from the
    broker on every call (a handful of requests: metadata, committed offsets, one watermark query per
    partition, the topic id).

    It only fetches committed offsets (it never joins the group), so it does not disturb the group, and it
    uses a client of its own, so a consumer that is stuck cannot freeze what it reports. Its client connects
    on first use (to the cluster settings name); each request waits at most timeout seconds. Thread-safe (one
    read at a time).
    """

    def __init__(self, settings: KafkaSettings, group: str, topic: str, timeout: float = 2.0) -> None:
        self.topic = topic
        self.group = group
        self._conf = kafka_client_config(
            settings,
            **{"group.id": group, "enable.auto.commit": False, "logger": logging.getLogger("kafka.client")},
        )
        self._timeout = timeout
        self._topic_ids = TopicIds(settings, timeout)
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def read(self) -> LagReading:
        """The lag of every partition now. Raises KafkaException (or RuntimeError when the topic does not
        exist) when the broker cannot tell."""
        with self._lock:
            if self._consumer is None:
                self._consumer = Consumer(self._conf)
            consumer = self._consumer
            meta = consumer.list_topics(self.topic, timeout=self._timeout).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise RuntimeError(f"topic {self.topic} not available: {meta.error if meta else 'unknown'}")
            partitions = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
            committed = consumer.committed(partitions, timeout=self._timeout)
            topic_id = self._topic_ids(self.topic)
            lags = {}
            for tp in committed:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, tp.partition), timeout=self._timeout, cached=False
                )
                view = PartitionView.of(tp, low, high, topic_id)
                lags[tp.partition] = PartitionLag(
                    tp.partition, view.committed, max(start_offset(view).offset, low), high
                )
            return LagReading(self.topic, lags)

    def __call__(self) -> int | None:
        """Records not yet committed by the group, or None when the broker could not tell just now."""
        try:
            return self.read().total
        except Exception as exc:  # the caller asks again later
            log.debug("lag of %s unavailable: %s", self.topic, exc)
            return None

    def close(self) -> None:
        """Release the client."""
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
