"""A consumer group's lag as the broker sees it, for the tools that watch the system (bench, chaos)."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, TopicPartition

log = logging.getLogger(__name__)


class GroupLag:
    """High watermark minus committed offset of one consumer group on one topic, read from the broker.

    Only fetches committed offsets (it never joins the group), so it does not disturb the group.
    """

    def __init__(self, bootstrap_servers: str, group: str, topic: str) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False}
        )
        self._partitions: list[TopicPartition] | None = None

    def __call__(self) -> int | None:
        """Records not yet committed by the group, or None when the broker could not tell just now."""
        try:
            if self._partitions is None:
                meta = self._consumer.list_topics(self.topic, timeout=2).topics.get(self.topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    return None
                self._partitions = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
            committed = self._consumer.committed(self._partitions, timeout=2)
            total = 0
            for tp in committed:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, tp.partition), timeout=2, cached=False
                )
                position = tp.offset if tp.offset >= 0 else low
                total += max(0, high - position)
            return total
        except Exception as exc:  # the caller asks again later
            log.debug("lag of %s unavailable: %s", self.topic, exc)
            return None

    def close(self) -> None:
        """Close the broker connection; the instance is unusable afterwards."""
        self._consumer.close()
