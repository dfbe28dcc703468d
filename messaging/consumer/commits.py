"""Sending a consumer's offset commits, and keeping what the broker confirmed.

Periodic commits are asynchronous: a synchronous commit has no timeout, so a hung (SIGSTOPped) broker
would block the consumer thread, and with it every fetch, for as long as the broker hangs. A failed
asynchronous commit puts its offsets back (through restore_soon, to the offset tracker on the event loop) so
the next round sends them again, unless a later commit of the partition superseded them (CommitLog).
Commits that must have landed before something else happens (on revocation, at shutdown) are synchronous.
Every offset is committed with the topic id its records came from as metadata (messaging.consumer.positions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from messaging.consumer.offsets import CommitLog

log = logging.getLogger(__name__)

Partition = tuple[str, int]


class OffsetCommits:
    """The commits of consumer. commit_metadata(topic, partition) gives the metadata to commit an offset of a
    partition with; restore_soon(offsets) hands the offsets of a failed asynchronous commit back to be sent
    again (called on the consumer thread, so it must pass them to the event loop itself).

    send_async, send_sync and on_commit run on the consumer thread, as every call of the consumer does.
    """

    def __init__(
        self,
        consumer: Consumer,
        commit_metadata: Callable[[str, int], str],
        restore_soon: Callable[[list[TopicPartition]], None],
    ) -> None:
        self._consumer = consumer
        self._metadata = commit_metadata
        self._restore_soon = restore_soon
        self._log = CommitLog()
        self._committed: dict[Partition, int] = {}  # confirmed by the broker

    @property
    def committed(self) -> dict[Partition, int]:
        """The newest offset the broker confirmed (or the group had committed at assignment), per partition."""
        return self._committed

    def update(self, committed: dict[Partition, int]) -> None:
        """Offsets the group has committed, as read at assignment."""
        self._committed.update(committed)

    def send_async(self, commits: list[TopicPartition]) -> None:
        """Send commits without waiting; the outcome comes to on_commit (from a later poll)."""
        commits = self._with_topic_ids(commits)
        self._log.sent(commits)
        self._consumer.commit(offsets=commits, asynchronous=True)

    def send_sync(self, commits: list[TopicPartition]) -> None:
        """Send commits and wait for the broker's answer. Raises KafkaException when the commit failed."""
        commits = self._with_topic_ids(commits)
        self._log.sent(commits)
        self._consumer.commit(offsets=commits, asynchronous=False)
        self._confirmed(commits)

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """From poll: the outcome of an asynchronous commit (the client's on_commit callback)."""
        report = self._log.report(error, partitions)
        self._confirmed(report.confirmed)
        if report.error:
            log.warning("offset commit failed (will retry): %s", report.error)
        if report.again:
            self._restore_soon(report.again)

    def _with_topic_ids(self, commits: list[TopicPartition]) -> list[TopicPartition]:
        """The offsets with the topic id their records came from as metadata."""
        return [
            TopicPartition(tp.topic, tp.partition, tp.offset, self._metadata(tp.topic, tp.partition)) for tp in commits
        ]

    def _confirmed(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            if tp.offset >= 0:
                key = (tp.topic, tp.partition)
                self._committed[key] = max(self._committed.get(key, 0), tp.offset)
