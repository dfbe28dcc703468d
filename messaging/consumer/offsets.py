"""Ordered commits for concurrent processing: a partition's committed offset only moves past records
whose work is finished (the lowest unfinished offset rule)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from confluent_kafka import KafkaError, TopicPartition


class PartitionOffsets:
    """The records of one partition whose work is under way, in offset order, and the next offset to commit."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._done: dict[int, bool] = {}
        self._committable: int | None = None
        self._taken = -1  # the highest offset handed out for a commit

    def add(self, offset: int) -> None:
        """A record was fetched and its work begins."""
        if offset in self._done:
            return  # read again after a rewind; still the same unit of work
        self._order.append(offset)
        self._done[offset] = False

    def complete(self, offset: int) -> None:
        """The record's work is durable; the commit may pass it once every earlier record's is too."""
        if offset in self._done:
            self._done[offset] = True
        while self._order and self._done[self._order[0]]:
            finished = self._order.popleft()
            del self._done[finished]
            self._committable = finished + 1

    def forget_from(self, offset: int) -> None:
        """Drop records at or after offset (they will be read again after a rewind)."""
        while self._order and self._order[-1] >= offset:
            del self._done[self._order.pop()]

    @property
    def in_flight(self) -> int:
        """Records tracked and not yet committable (unfinished, or behind an unfinished one)."""
        return len(self._order)

    def take_committable(self) -> int | None:
        """The next offset to commit, once; None when nothing new finished."""
        value, self._committable = self._committable, None
        if value is not None:
            self._taken = max(self._taken, value)
        return value

    def restore(self, offset: int) -> None:
        """A commit failed: offer its offset again if it is the newest this partition handed out and nothing
        later is waiting (committing an older one again would move the group back). An offset this tracker
        never handed out (one of a partition restarted from its beginning meanwhile) is ignored."""
        if offset == self._taken and (self._committable is None or self._committable < offset):
            self._committable = offset


class OffsetTracker:
    """Tracks every assigned partition of one consumer. Event-loop only.

    Each partition has a generation, which reset() advances: work that began in an earlier generation (records
    of a log that has since been replaced, e.g. a recreated topic) no longer counts towards its commits.
    """

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], PartitionOffsets] = {}
        self._generations: dict[tuple[str, int], int] = {}

    def assign(self, topic: str, partition: int) -> None:
        """Start tracking a partition just assigned."""
        self._partitions.setdefault((topic, partition), PartitionOffsets())

    def revoke(self, topic: str, partition: int) -> PartitionOffsets | None:
        """Stop tracking a partition (revoked or lost); returns what was tracked, if anything."""
        return self._partitions.pop((topic, partition), None)

    def reset(self, topic: str, partition: int) -> None:
        """The partition starts again elsewhere (from its beginning): forget its records and uncommitted
        offsets, and begin a new generation."""
        key = (topic, partition)
        self._generations[key] = self.generation(topic, partition) + 1
        if key in self._partitions:
            self._partitions[key] = PartitionOffsets()

    def generation(self, topic: str, partition: int) -> int:
        """The partition's current generation (0 until the first reset)."""
        return self._generations.get((topic, partition), 0)

    def add(self, topic: str, partition: int, offset: int) -> None:
        """A record was fetched and its work begins."""
        self._partitions.setdefault((topic, partition), PartitionOffsets()).add(offset)

    def complete(self, topic: str, partition: int, offset: int, generation: int | None = None) -> None:
        """The record's work is durable. generation: the partition's generation when the record was fetched;
        a record of an earlier generation is ignored (None: the current one)."""
        if generation is not None and generation != self.generation(topic, partition):
            return
        tracked = self._partitions.get((topic, partition))
        if tracked is not None:  # revoked meanwhile: the new owner re-reads from the last commit
            tracked.complete(offset)

    def forget_from(self, topic: str, partition: int, offset: int) -> None:
        """Drop the partition's records at or after offset (rewound: they will be read again)."""
        tracked = self._partitions.get((topic, partition))
        if tracked is not None:
            tracked.forget_from(offset)

    def in_flight(self, topic: str | None = None, partition: int | None = None) -> int:
        """Records not yet committable, of one partition or of all."""
        if topic is not None and partition is not None:
            tracked = self._partitions.get((topic, partition))
            return tracked.in_flight if tracked else 0
        return sum(p.in_flight for p in self._partitions.values())

    def restore(self, commits: list[TopicPartition]) -> None:
        """Commits that failed: offer their offsets again where nothing later superseded them."""
        for tp in commits:
            tracked = self._partitions.get((tp.topic, tp.partition))
            if tracked is not None:
                tracked.restore(tp.offset)

    def take_commits(self, only: set[tuple[str, int]] | None = None) -> list[TopicPartition]:
        """The offsets to commit now (each once), of every partition or of those in only."""
        commits = []
        for (topic, partition), tracked in self._partitions.items():
            if only is not None and (topic, partition) not in only:
                continue
            offset = tracked.take_committable()
            if offset is not None:
                commits.append(TopicPartition(topic, partition, offset))
        return commits


@dataclass(frozen=True)
class CommitReport:
    """What one commit report (on_commit) means for the committer."""

    confirmed: list[TopicPartition]
    again: list[TopicPartition]  # failed and not superseded by a later commit: send these again
    error: str | None  # the failure, when any partition failed


class CommitLog:
    """The newest offset sent per partition, so a failed commit is sent again only when no later one
    supersedes it: sending an older offset again would move the group back. Consumer-thread only."""

    def __init__(self) -> None:
        self._sent: dict[tuple[str, int], int] = {}

    def sent(self, offsets: list[TopicPartition]) -> None:
        """offsets were sent for commit."""
        for tp in offsets:
            self._sent[(tp.topic, tp.partition)] = tp.offset

    def report(self, error: KafkaError | None, partitions: list[TopicPartition]) -> CommitReport:
        """What a commit report (the client's on_commit(error, partitions)) means."""
        confirmed: list[TopicPartition] = []
        again: list[TopicPartition] = []
        failure: str | None = None
        for tp in partitions:
            if error is None and tp.error is None:
                confirmed.append(tp)
                continue
            failure = failure or str(error or tp.error)
            if tp.offset >= self._sent.get((tp.topic, tp.partition), -1):
                again.append(TopicPartition(tp.topic, tp.partition, tp.offset))
        return CommitReport(confirmed, again, failure)
