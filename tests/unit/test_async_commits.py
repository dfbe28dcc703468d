"""Asynchronous offset commits: a failed commit is sent again, unless a later commit supersedes it."""

import asyncio

from confluent_kafka import KafkaError, TopicPartition

from messaging.concurrent_consumer import ConcurrentConsumer
from messaging.consuming import BatchConsumerWorker


class RecordingConsumer:
    """Stands in for confluent_kafka.Consumer: records commits, reports through on_commit."""

    def __init__(self, on_commit):
        self.on_commit = on_commit
        self.commits: list[list[tuple[int, int]]] = []

    def commit(self, offsets, asynchronous):
        assert asynchronous, "periodic commits must not block on the broker"
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def report(self, error=None, *offsets):
        self.on_commit(error, [TopicPartition("t", p, o) for p, o in offsets])


def concurrent_consumer():
    made = {}

    def connect(on_commit):
        made["consumer"] = RecordingConsumer(on_commit)
        return made["consumer"]

    consumer = ConcurrentConsumer(connect, "t", None, None, None, key_of=str)
    return consumer, made["consumer"]


def finish(consumer, partition, offset):
    consumer._tracker.add("t", partition, offset)
    consumer._tracker.complete("t", partition, offset)


def test_failed_commit_is_sent_again_and_lag_follows_confirmed_commits():
    async def scenario():
        consumer, kafka = concurrent_consumer()
        consumer._loop = asyncio.get_running_loop()
        consumer.assignment = [("t", 0)]
        consumer._high[("t", 0)] = 10
        finish(consumer, 0, 4)
        await consumer._commit()
        assert kafka.commits == [[(0, 5)]]
        assert consumer.lag() == 10  # sent, not confirmed
        kafka.report(KafkaError(KafkaError._TRANSPORT), (0, 5))
        await asyncio.sleep(0)  # the restore is handed to the loop
        await consumer._commit()
        assert kafka.commits[-1] == [(0, 5)]
        kafka.report(None, (0, 5))
        assert consumer.lag() == 5
        assert consumer.last_error is not None
        consumer._thread.shutdown()

    asyncio.run(scenario())


def test_failed_commit_superseded_by_a_later_one_is_not_sent_again():
    async def scenario():
        consumer, kafka = concurrent_consumer()
        consumer._loop = asyncio.get_running_loop()
        finish(consumer, 0, 4)
        await consumer._commit()
        finish(consumer, 0, 8)
        await consumer._commit()
        kafka.report(KafkaError(KafkaError._TRANSPORT), (0, 5))
        await asyncio.sleep(0)
        await consumer._commit()
        assert kafka.commits == [[(0, 5)], [(0, 9)]]  # never back to 5
        consumer._thread.shutdown()

    asyncio.run(scenario())


def test_lag_is_unknown_without_partitions():
    consumer, _ = concurrent_consumer()
    assert consumer.lag() is None
    consumer._thread.shutdown()


def test_batch_worker_sends_failed_commit_again_unless_superseded():
    made = {}

    def connect(on_commit):
        made["consumer"] = RecordingConsumer(on_commit)
        return made["consumer"]

    worker = BatchConsumerWorker(connect, "t", None, None, lambda batch: None, name="w")
    kafka = made["consumer"]
    worker._commit([TopicPartition("t", 0, 5), TopicPartition("t", 1, 3)])
    worker._commit([TopicPartition("t", 0, 9)])
    kafka.report(KafkaError(KafkaError._TRANSPORT), (0, 5), (1, 3))
    assert [(tp.partition, tp.offset) for tp in worker._retry] == [(1, 3)]
