"""Ordered commits for concurrent processing: a partition's committed offset only moves past records
whose work is finished (the lowest unfinished offset rule)."""

from __future__ import annotations

from collections import deque

from confluent_kafka import TopicPartition


class PartitionOffsets:
    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._done: dict[int, bool] = {}
        self._committable: int | None = None

    def add(self, offset: int) -> None:
        if offset in self._done:
            return  # read again after a rewind; still the same unit of work
        self._order.append(offset)
        self._done[offset] = False

    def complete(self, offset: int) -> None:
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
        return len(self._order)

    def take_committable(self) -> int | None:
        """The next offset to commit, once; None when nothing new finished."""
        value, self._committable = self._committable, None
        return value

    def restore(self, offset: int) -> None:
        """A commit failed: offer its offset again unless a later one is already waiting."""
        if self._committable is None or self._committable < offset:
            self._committable = offset


class OffsetTracker:
    """Tracks every assigned partition of one consumer."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], PartitionOffsets] = {}

    def assign(self, topic: str, partition: int) -> None:
        self._partitions.setdefault((topic, partition), PartitionOffsets())

    def revoke(self, topic: str, partition: int) -> PartitionOffsets | None:
        return self._partitions.pop((topic, partition), None)

    def add(self, topic: str, partition: int, offset: int) -> None:
        self._partitions.setdefault((topic, partition), PartitionOffsets()).add(offset)

    def complete(self, topic: str, partition: int, offset: int) -> None:
        tracked = self._partitions.get((topic, partition))
        if tracked is not None:  # revoked meanwhile: the new owner re-reads from the last commit
            tracked.complete(offset)

    def forget_from(self, topic: str, partition: int, offset: int) -> None:
        tracked = self._partitions.get((topic, partition))
        if tracked is not None:
            tracked.forget_from(offset)

    def in_flight(self, topic: str | None = None, partition: int | None = None) -> int:
        if topic is not None and partition is not None:
            tracked = self._partitions.get((topic, partition))
            return tracked.in_flight if tracked else 0
        return sum(p.in_flight for p in self._partitions.values())

    def restore(self, commits: list[TopicPartition]) -> None:
        for tp in commits:
            tracked = self._partitions.get((tp.topic, tp.partition))
            if tracked is not None:
                tracked.restore(tp.offset)

    def take_commits(self, only: set[tuple[str, int]] | None = None) -> list[TopicPartition]:
        commits = []
        for (topic, partition), tracked in self._partitions.items():
            if only is not None and (topic, partition) not in only:
                continue
            offset = tracked.take_committable()
            if offset is not None:
                commits.append(TopicPartition(topic, partition, offset))
        return commits
