"""Where a consumer starts a partition: the committed offset, or the beginning when it cannot belong there."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING

from messaging.consumer.start_offsets import (
    PartitionView,
    commit_metadata,
    committed_topic_id,
    start_offset,
)

OLD_ID, NEW_ID = "TBvX2SUPRpKcntONO1XmyA", "d9Z1nnyuSOCkA0FIz7kmHQ"


def view(committed=40, committed_id=OLD_ID, low=0, high=100, topic_id=OLD_ID) -> PartitionView:
    return PartitionView(committed, committed_id, low, high, topic_id)


def test_a_committed_offset_inside_the_partition_is_where_it_resumes():
    decision = start_offset(view(committed=40))
    assert (decision.offset, decision.from_beginning) == (40, False)


def test_the_end_itself_is_a_valid_position():
    assert start_offset(view(committed=100, high=100)).offset == 100


def test_a_committed_offset_beyond_the_end_starts_from_the_beginning():
    # The recreated topic has 12 records; the group committed 100 on the old one.
    decision = start_offset(view(committed=100, low=0, high=12, committed_id=None, topic_id=None))
    assert decision.offset == 0
    assert decision.from_beginning and "beyond" in decision.reason


def test_a_changed_topic_id_starts_from_the_beginning_even_when_the_new_topic_is_longer():
    # 300 records on the new topic: offset 100 is inside it, but it belongs to the old one.
    decision = start_offset(view(committed=100, committed_id=OLD_ID, low=0, high=300, topic_id=NEW_ID))
    assert decision.offset == 0
    assert decision.from_beginning and "recreated" in decision.reason


def test_the_beginning_is_the_low_watermark():
    decision = start_offset(view(committed=100, low=7, high=50, topic_id=NEW_ID))
    assert decision.offset == 7


def test_records_removed_before_the_committed_offset_start_at_the_beginning():
    decision = start_offset(view(committed=5, low=20, high=50))
    assert decision.offset == 20 and decision.from_beginning


def test_no_committed_offset_starts_at_the_beginning_without_a_warning():
    decision = start_offset(view(committed=None, committed_id=None, low=3))
    assert (decision.offset, decision.from_beginning) == (3, False)


def test_unknown_ids_and_watermarks_leave_the_committed_offset():
    decision = start_offset(PartitionView(40, None, None, None, None))
    assert (decision.offset, decision.from_beginning) == (40, False)


def test_a_changed_id_without_watermarks_starts_at_the_logical_beginning():
    decision = start_offset(PartitionView(40, OLD_ID, None, None, NEW_ID))
    assert decision.offset == OFFSET_BEGINNING and decision.from_beginning


def test_commit_metadata_names_the_topic_id_and_reads_back():
    assert committed_topic_id(commit_metadata(NEW_ID)) == NEW_ID
    assert commit_metadata(None) == ""
    assert committed_topic_id("") is None
    assert committed_topic_id("written by another tool") is None
    assert committed_topic_id(None) is None
