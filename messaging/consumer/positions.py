"""Where the consumer reads each partition: the start on assignment, and a new start from the beginning when
the partition's log was replaced under the consumer (topic recreated) or the broker no longer has the
position asked for (offset out of range). Consumer-thread only.

Three moments, one rule (messaging.consumer.start_offsets):

- on assignment, the committed offsets, their topic ids, the watermarks and the topic's current id are read
  and every partition is assigned at the offset the rule gives;
- when librdkafka reports that a fetch asked for an offset the broker does not have (auto.offset.reset=error
  makes it report instead of resetting silently, see poll_batch), the partition starts from its beginning;
- a periodic check compares each partition's in-memory position with its end and the topic's id with the
  one its records came from: librdkafka neither notices a topic recreated under it (the new log is simply
  read from the old position, skipping everything below it, when it has grown past it) nor resets its
  metadata for it (confluentinc/librdkafka#4898, #3255).

Every such start is logged as a WARNING naming the topic, partition, committed offset and end offset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from messaging.consumer.start_offsets import (
    PartitionView,
    StartDecision,
    commit_metadata,
    start_offset,
)
from messaging.consumer.topic_ids import TopicIdLookup

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(frozen=True)
class AssignPlan:
    """The partitions to assign with their start offsets (None: let the client start at the committed
    offsets, when they could not be read), and the committed offsets read, by partition."""

    partitions: list[TopicPartition] | None
    committed: dict[Partition, int]


class PartitionPositions:
    """Sets and checks the positions of one consumer's partitions; knows which topic id each partition's
    records belong to (the id committed with their offsets).

    topic_ids: looks up a topic's current id (None: ids are not used, only the watermarks). timeout: seconds
    each broker request may take.
    """

    def __init__(self, consumer: Consumer, topic_ids: TopicIdLookup | None, timeout: float = 5.0) -> None:
        self._consumer = consumer
        self._topic_ids = topic_ids
        self._timeout = timeout
        self._ids: dict[Partition, str] = {}

    def commit_metadata(self, topic: str, partition: int) -> str:
        """The metadata to commit with an offset of this partition: the topic id its records came from."""
        return commit_metadata(self._ids.get((topic, partition)))

    def forget(self, keys: set[Partition]) -> None:
        """The partitions were revoked or lost."""
        for key in keys:
            self._ids.pop(key, None)

    def plan(self, partitions: list[TopicPartition]) -> AssignPlan:
        """On assignment (inside on_assign): the start offset of every partition by the start-offset rule,
        each start from the beginning instead of the committed offset logged as a WARNING."""
        if not partitions:
            return AssignPlan([], {})
        try:
            committed = self._consumer.committed(partitions, timeout=self._timeout)
        except KafkaException as exc:
            log.warning("committed offsets unavailable (%s): partitions start at the committed offsets", exc)
            return AssignPlan(None, {})
        topic_ids = {tp.topic: self._topic_id(tp.topic) for tp in committed}
        starts, offsets = [], {}
        for tp in committed:
            key = (tp.topic, tp.partition)
            low, high = self._watermarks(tp.topic, tp.partition)
            has_commit = tp.offset >= 0
            view = PartitionView.of(tp, low, high, topic_ids[tp.topic])
            decision = start_offset(view)
            if decision.from_beginning:
                _warn(tp.topic, tp.partition, view, decision, "on assignment")
            if has_commit:
                offsets[key] = tp.offset
            # Without the current id, the committed one stands in: the periodic check compares it later.
            known = view.topic_id or view.committed_topic_id
            if known:
                self._ids[key] = known
            starts.append(TopicPartition(tp.topic, tp.partition, decision.offset))
        return AssignPlan(starts, offsets)

    def out_of_range(self, topic: str, partition: int, asked: int | None, committed: int | None, paused: bool) -> bool:
        """librdkafka reported that the broker has no record at offset asked (None: no committed offset
        to start from): start the partition from its beginning. False when the watermarks could not be read
        (try again later)."""
        low, high = self._watermarks(topic, partition)
        if low is None:
            return False
        if asked is None:
            log.info("%s[%d]: no committed offset, starting from the beginning (%d)", topic, partition, low)
        else:
            log.warning(
                "%s[%d]: the broker has no offset %d (committed %s, end %s): "
                "starting again from the partition's beginning (%d)",
                topic,
                partition,
                asked,
                committed,
                high,
                low,
            )
        self._restart(topic, partition, low, paused)
        current = self._topic_id(topic)
        if current:
            self._ids[(topic, partition)] = current
        return True

    def check(self, keys: list[Partition], committed: dict[Partition, int], paused: bool) -> list[Partition]:
        """Periodically: start a partition from its beginning when the topic's id changed since its records
        were read (recreated) or its in-memory position is beyond its end. Returns the partitions
        restarted; a partition whose state cannot be read now is left for the next check."""
        if not keys:
            return []
        try:
            positions = self._consumer.position([TopicPartition(t, p) for t, p in keys])
        except KafkaException:
            return []
        ids = {topic: self._topic_id(topic) for topic, _ in keys}
        restarted = []
        for tp in positions:
            key = (tp.topic, tp.partition)
            # The position is read before the end offset: on an unchanged log it can never be beyond it.
            low, high = self._watermarks(tp.topic, tp.partition)
            if low is None or high is None:
                continue
            known, current = self._ids.get(key), ids[tp.topic]
            view = PartitionView(committed.get(key), known, low, high, current)
            if known and current and known != current:
                reason = f"the topic was recreated (records read under topic id {known}, its id is now {current})"
                _warn(tp.topic, tp.partition, view, StartDecision(low, reason), "while consuming")
            elif tp.offset >= 0 and tp.offset > high:
                decision = StartDecision(low, f"the consumer's position {tp.offset} is beyond the partition's end")
                _warn(tp.topic, tp.partition, view, decision, "while consuming")
            else:
                if current and not known:
                    self._ids[key] = current
                continue
            self._restart(tp.topic, tp.partition, low, paused)
            if current:
                self._ids[key] = current
            restarted.append(key)
        return restarted

    # -- helpers ------------------------------------------------------------------------------------

    def _restart(self, topic: str, partition: int, offset: int, paused: bool) -> None:
        """Fetch the partition from offset. seek() where the partition is being fetched; after an
        auto.offset.reset error librdkafka refuses seek() (erroneous state), so the partition is assigned
        again at offset instead (this consumer keeps it; the group is not involved)."""
        tp = TopicPartition(topic, partition, offset)
        try:
            self._consumer.seek(tp)
            return
        except KafkaException:
            pass
        self._consumer.incremental_unassign([TopicPartition(topic, partition)])
        self._consumer.incremental_assign([tp])
        if paused:
            self._consumer.pause([TopicPartition(topic, partition)])

    def _watermarks(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self._timeout, cached=False
            )
        except KafkaException as exc:
            log.debug("watermarks of %s[%d] unavailable: %s", topic, partition, exc)
            return None, None
        return (low, high) if low >= 0 and high >= 0 else (None, None)

    def _topic_id(self, topic: str) -> str | None:
        return self._topic_ids(topic) if self._topic_ids is not None else None


def _warn(topic: str, partition: int, view: PartitionView, decision: StartDecision, when: str) -> None:
    log.warning(
        "%s[%d] %s: %s; starting from the partition's beginning (%s) instead of the committed offset "
        "(committed %s, end %s)",
        topic,
        partition,
        when,
        decision.reason,
        view.low if view.low is not None else "earliest",
        view.committed,
        view.high,
    )
