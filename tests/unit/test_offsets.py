from confluent_kafka import KafkaError, TopicPartition

from messaging.consumer.offsets import CommitLog, OffsetTracker


def commits(tracker):
    return [(tp.topic, tp.partition, tp.offset) for tp in tracker.take_commits()]


def test_commit_waits_for_lowest_unfinished_offset():
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.add("t", 0, offset)
    tracker.complete("t", 0, 12)
    tracker.complete("t", 0, 11)
    assert commits(tracker) == []  # 10 still running
    tracker.complete("t", 0, 10)
    assert commits(tracker) == [("t", 0, 13)]
    assert commits(tracker) == []  # handed out once


def test_partitions_are_independent():
    tracker = OffsetTracker()
    tracker.add("t", 0, 5)
    tracker.add("t", 1, 7)
    tracker.complete("t", 1, 7)
    assert commits(tracker) == [("t", 1, 8)]
    assert tracker.in_flight() == 1


def test_failed_commit_is_offered_again():
    tracker = OffsetTracker()
    tracker.add("t", 0, 1)
    tracker.complete("t", 0, 1)
    taken = tracker.take_commits()
    tracker.restore(taken)
    assert commits(tracker) == [("t", 0, 2)]


def test_rewound_records_are_forgotten_and_revoked_partitions_ignored():
    tracker = OffsetTracker()
    for offset in (1, 2, 3):
        tracker.add("t", 0, offset)
    tracker.forget_from("t", 0, 2)
    tracker.complete("t", 0, 1)
    assert commits(tracker) == [("t", 0, 2)]
    tracker.revoke("t", 0)
    tracker.complete("t", 0, 2)
    assert commits(tracker) == []


def test_a_failed_commit_older_than_one_handed_out_since_is_not_offered_again():
    tracker = OffsetTracker()
    tracker.add("t", 0, 1)
    tracker.complete("t", 0, 1)
    first = tracker.take_commits()  # offset 2, sent
    tracker.add("t", 0, 2)
    tracker.complete("t", 0, 2)
    assert commits(tracker) == [("t", 0, 3)]  # sent too
    tracker.restore(first)  # the report of the first commit: failed
    assert commits(tracker) == []


def test_commit_log_sends_again_only_what_no_later_commit_supersedes():
    log = CommitLog()
    log.sent([TopicPartition("t", 0, 5), TopicPartition("t", 1, 3)])
    log.sent([TopicPartition("t", 0, 9)])
    report = log.report(KafkaError(KafkaError._TRANSPORT), [TopicPartition("t", 0, 5), TopicPartition("t", 1, 3)])
    assert [(tp.partition, tp.offset) for tp in report.again] == [(1, 3)]
    assert report.confirmed == [] and report.error
    ok = log.report(None, [TopicPartition("t", 0, 9)])
    assert [(tp.partition, tp.offset) for tp in ok.confirmed] == [(0, 9)] and ok.error is None


def test_a_partition_started_again_forgets_its_records_and_ignores_work_of_the_old_log():
    tracker = OffsetTracker()
    tracker.assign("t", 0)
    for offset in (40, 41):
        tracker.add("t", 0, offset)
    old = tracker.generation("t", 0)
    tracker.reset("t", 0)  # the topic was recreated: the partition starts again at 0
    assert tracker.in_flight() == 0
    tracker.add("t", 0, 0)
    tracker.complete("t", 0, 40, old)  # work on records of the old log finishes
    tracker.complete("t", 0, 41, old)
    assert commits(tracker) == []  # offsets of the old log are never committed on the new one
    tracker.complete("t", 0, 0, tracker.generation("t", 0))
    assert commits(tracker) == [("t", 0, 1)]


def test_a_failed_commit_of_the_old_log_is_not_offered_again_after_a_restart():
    tracker = OffsetTracker()
    tracker.add("t", 0, 40)
    tracker.complete("t", 0, 40)
    stale = tracker.take_commits()  # offset 41 of the old log, sent
    tracker.reset("t", 0)
    tracker.restore(stale)  # its report: failed
    assert commits(tracker) == []
