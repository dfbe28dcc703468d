"""Where a consumer starts reading a partition: at the group's committed offset, unless that offset cannot
belong to the partition as it is now; then at the partition's beginning.

A committed offset is a position in one incarnation of a topic. Deleting a topic and creating it again
under the same name (an operator's fix, a test reset) makes a new, empty log whose offsets start again
at 0, while the group may still hold an offset committed for the old one (a commit that was in flight or
retried while the topic was recreated). Resuming there would skip every record below it for good. Kafka
gives each incarnation a topic id (KIP-516), so this runtime commits the topic id with every offset (the
commit's metadata, `topic-id:<id>`) and compares it with the topic's current id on assignment.

The rule (``start_offset``), for one partition:

- no committed offset: the beginning (what ``auto.offset.reset=earliest`` would do);
- committed under another topic id: the topic was recreated, the beginning;
- committed beyond the partition's end (high watermark): the log it belongs to is gone, the beginning;
- committed before the partition's beginning (low watermark; records removed by retention): the beginning;
- otherwise the committed offset.

Starting again from the beginning re-reads records; the consumers are idempotent, so that is safe, while
skipping records is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

_METADATA_PREFIX = "topic-id:"


def commit_metadata(topic_id: str | None) -> str:
    """The metadata committed with an offset of the topic incarnation whose id is topic_id ("" if unknown)."""
    return f"{_METADATA_PREFIX}{topic_id}" if topic_id else ""


def committed_topic_id(metadata: str | None) -> str | None:
    """The topic id a committed offset's metadata names, or None (no metadata, or written by another tool)."""
    if metadata and metadata.startswith(_METADATA_PREFIX):
        return metadata[len(_METADATA_PREFIX) :] or None
    return None


@dataclass(frozen=True)
class PartitionView:
    """What the broker says about one partition for one consumer group.

    committed: the group's committed offset (None when it has none); committed_topic_id: the topic id
    committed with it (None when unknown); low, high: the partition's low and high watermarks (None when
    they could not be read); topic_id: the topic's current id (None when it could not be read).
    """

    committed: int | None
    committed_topic_id: str | None
    low: int | None
    high: int | None
    topic_id: str | None

    @classmethod
    def of(cls, committed: TopicPartition, low: int | None, high: int | None, topic_id: str | None) -> PartitionView:
        """The view of committed (as Consumer.committed() returns it: offset < 0 for none, the topic id in
        its metadata) with the partition's watermarks and the topic's current id."""
        has_commit = committed.offset >= 0
        return cls(
            committed.offset if has_commit else None,
            committed_topic_id(committed.metadata) if has_commit else None,
            low,
            high,
            topic_id,
        )


@dataclass(frozen=True)
class StartDecision:
    """Where to start: offset (an absolute offset, or OFFSET_BEGINNING when the beginning is not known), and
    why the committed offset is not used (None when it is, or when there was none)."""

    offset: int
    reason: str | None = None

    @property
    def from_beginning(self) -> bool:
        """Whether the partition starts from its beginning because the committed offset is unusable."""
        return self.reason is not None


def start_offset(view: PartitionView) -> StartDecision:
    """The offset a consumer of the group starts the partition at (see the module's rule)."""
    beginning = view.low if view.low is not None and view.low >= 0 else OFFSET_BEGINNING
    if view.committed is None or view.committed < 0:
        return StartDecision(beginning)
    if view.topic_id and view.committed_topic_id and view.topic_id != view.committed_topic_id:
        return StartDecision(
            beginning,
            f"the topic was recreated (offset committed under topic id {view.committed_topic_id}, "
            f"the topic's id is now {view.topic_id})",
        )
    if view.high is not None and view.high >= 0 and view.committed > view.high:
        return StartDecision(beginning, "the committed offset is beyond the partition's end")
    if view.low is not None and view.low >= 0 and view.committed < view.low:
        return StartDecision(beginning, "the committed offset is before the partition's beginning (removed records)")
    return StartDecision(view.committed)
