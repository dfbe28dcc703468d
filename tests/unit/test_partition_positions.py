"""Where the consumer runtime assigns and restarts partitions, against a stand-in for the client."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from messaging.consumer.positions import PartitionPositions
from messaging.consumer.start_offsets import commit_metadata

OLD_ID, NEW_ID = "old-topic-id", "new-topic-id"


class FakeConsumer:
    """Stands in for confluent_kafka.Consumer: committed offsets, watermarks and positions per partition."""

    def __init__(self) -> None:
        self.committed_offsets: dict[int, tuple[int, str | None]] = {}
        self.watermarks: dict[int, tuple[int, int]] = {}
        self.positions: dict[int, int] = {}
        self.seeks: list[tuple[int, int]] = []
        self.assigned: list[tuple[int, int]] = []
        self.seek_refused = False

    def committed(self, partitions, timeout):
        answer = []
        for tp in partitions:
            offset, metadata = self.committed_offsets.get(tp.partition, (-1001, None))
            answer.append(TopicPartition(tp.topic, tp.partition, offset, metadata or ""))
        return answer

    def get_watermark_offsets(self, tp, timeout, cached):
        return self.watermarks[tp.partition]

    def position(self, partitions):
        return [TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001)) for tp in partitions]

    def seek(self, tp):
        if self.seek_refused:
            raise KafkaException(KafkaError(KafkaError._STATE))
        self.seeks.append((tp.partition, tp.offset))

    def incremental_unassign(self, partitions):
        pass

    def incremental_assign(self, partitions):
        self.assigned += [(tp.partition, tp.offset) for tp in partitions]

    def pause(self, partitions):
        pass


class TopicIds:
    def __init__(self, current: str | None) -> None:
        self.current = current

    def __call__(self, topic: str) -> str | None:
        return self.current


@pytest.fixture
def kafka() -> FakeConsumer:
    return FakeConsumer()


def starts(positions: PartitionPositions, *partitions: int) -> dict[int, int]:
    plan = positions.plan([TopicPartition("orders", p) for p in partitions])
    assert plan.partitions is not None
    return {tp.partition: tp.offset for tp in plan.partitions}


def test_assignment_starts_at_the_committed_offsets_and_commits_carry_the_topic_id(kafka):
    kafka.committed_offsets = {0: (40, commit_metadata(OLD_ID))}
    kafka.watermarks = {0: (0, 100)}
    positions = PartitionPositions(kafka, TopicIds(OLD_ID))
    assert starts(positions, 0) == {0: 40}
    assert positions.commit_metadata("orders", 0) == commit_metadata(OLD_ID)


def test_assignment_after_recreation_starts_from_the_beginning_with_a_warning(kafka, caplog):
    kafka.committed_offsets = {0: (100, commit_metadata(OLD_ID)), 1: (100, None), 2: (5, commit_metadata(NEW_ID))}
    kafka.watermarks = {0: (0, 300), 1: (0, 12), 2: (0, 12)}
    positions = PartitionPositions(kafka, TopicIds(NEW_ID))
    with caplog.at_level(logging.WARNING, "messaging.consumer.positions"):
        assert starts(positions, 0, 1, 2) == {0: 0, 1: 0, 2: 5}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "orders[0]" in warnings[0] and "recreated" in warnings[0] and "committed 100, end 300" in warnings[0]
    assert "orders[1]" in warnings[1] and "beyond" in warnings[1] and "committed 100, end 12" in warnings[1]
    assert positions.commit_metadata("orders", 0) == commit_metadata(NEW_ID)


def test_committed_offsets_unavailable_leave_the_start_to_the_client(kafka):
    def unavailable(partitions, timeout):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    kafka.committed = unavailable
    plan = PartitionPositions(kafka, TopicIds(OLD_ID)).plan([TopicPartition("orders", 0)])
    assert plan.partitions is None


def test_the_check_restarts_a_partition_whose_topic_was_recreated_under_it(kafka):
    kafka.committed_offsets = {0: (10, commit_metadata(OLD_ID))}
    kafka.watermarks = {0: (0, 10)}
    ids = TopicIds(OLD_ID)
    positions = PartitionPositions(kafka, ids)
    starts(positions, 0)
    kafka.positions = {0: 10}
    assert positions.check([("orders", 0)], {("orders", 0): 10}, paused=False) == []
    ids.current = NEW_ID
    kafka.watermarks = {0: (0, 15)}  # the new topic grew past the old position
    assert positions.check([("orders", 0)], {("orders", 0): 10}, paused=False) == [("orders", 0)]
    assert kafka.seeks == [(0, 0)]
    assert positions.commit_metadata("orders", 0) == commit_metadata(NEW_ID)


def test_the_check_restarts_a_position_beyond_the_end_without_topic_ids(kafka):
    kafka.watermarks = {0: (0, 4)}
    kafka.positions = {0: 10}
    positions = PartitionPositions(kafka, None)
    assert positions.check([("orders", 0)], {}, paused=False) == [("orders", 0)]
    assert kafka.seeks == [(0, 0)]


def test_out_of_range_restarts_from_the_beginning_even_where_seek_is_refused(kafka):
    kafka.watermarks = {0: (3, 8)}
    kafka.seek_refused = True  # librdkafka after an auto.offset.reset error
    positions = PartitionPositions(kafka, TopicIds(NEW_ID))
    assert positions.out_of_range("orders", 0, 40, 40, paused=False)
    assert kafka.assigned == [(0, 3)]
