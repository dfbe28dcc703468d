"""Offset commits: a failed asynchronous commit is sent again, unless a later commit supersedes it; every commit
carries the topic id, and only what the broker confirmed counts as committed."""

import asyncio

from confluent_kafka import KafkaError, TopicPartition

from messaging.consumer.commits import OffsetCommits
from messaging.consumer.dispatch import BatchDispatcher, KeyOrderedDispatcher
from messaging.consumer.runtime import ConsumerRuntime


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


def runtime(dispatcher=None):
    made = {}

    def connect(on_commit, **config):
        made["consumer"] = RecordingConsumer(on_commit)
        return made["consumer"]

    consumer = ConsumerRuntime(connect, "t", None, None, dispatcher or KeyOrderedDispatcher(None, key_of=str))
    return consumer, made["consumer"]


def finish(consumer, partition, offset):
    consumer._tracker.add("t", partition, offset)
    consumer._tracker.complete("t", partition, offset)


def test_failed_commit_is_sent_again_and_lag_follows_confirmed_commits():
    async def scenario():
        consumer, kafka = runtime()
        consumer._loop = asyncio.get_running_loop()
        consumer._assignment = [("t", 0)]
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
        consumer._thread.shutdown()

    asyncio.run(scenario())


def test_failed_commit_superseded_by_a_later_one_is_not_sent_again():
    async def scenario():
        consumer, kafka = runtime()
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


def test_batch_mode_commits_the_same_way():
    async def scenario():
        consumer, kafka = runtime(BatchDispatcher(lambda events: None))
        consumer._loop = asyncio.get_running_loop()
        finish(consumer, 0, 5)
        finish(consumer, 1, 3)
        await consumer._commit()
        finish(consumer, 0, 9)
        await consumer._commit()
        kafka.report(KafkaError(KafkaError._TRANSPORT), (0, 6), (1, 4))
        await asyncio.sleep(0)
        await consumer._commit()
        assert kafka.commits[-1] == [(1, 4)]  # partition 0 moved on to 10 meanwhile
        consumer._thread.shutdown()

    asyncio.run(scenario())


def test_lag_is_unknown_without_partitions():
    consumer, _ = runtime()
    assert consumer.lag() is None
    consumer._thread.shutdown()


class SyncConsumer:
    def __init__(self):
        self.sent = []

    def commit(self, offsets, asynchronous):
        self.sent.append((asynchronous, [(tp.partition, tp.offset, tp.metadata) for tp in offsets]))


def test_commits_carry_the_topic_id_and_only_confirmed_ones_count():
    kafka = SyncConsumer()
    again = []
    commits = OffsetCommits(kafka, lambda topic, partition: f"id-of-{topic}-{partition}", again.extend)
    commits.update({("t", 1): 3})  # read at assignment

    commits.send_sync([TopicPartition("t", 0, 7)])
    commits.send_async([TopicPartition("t", 1, 9)])
    assert kafka.sent == [(False, [(0, 7, "id-of-t-0")]), (True, [(1, 9, "id-of-t-1")])]
    assert commits.committed == {("t", 0): 7, ("t", 1): 3}  # the asynchronous one is not confirmed yet

    commits.on_commit(KafkaError(KafkaError._TRANSPORT), [TopicPartition("t", 1, 9)])
    assert [(tp.partition, tp.offset) for tp in again] == [(1, 9)] and commits.committed[("t", 1)] == 3
    commits.on_commit(None, [TopicPartition("t", 1, 9)])
    assert commits.committed == {("t", 0): 7, ("t", 1): 9}
