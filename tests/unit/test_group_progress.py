"""The progress rule: a partition with lag whose committed offset stands still longer than the stall time
is stalled; any move of its committed offset, or catching up, is progress."""

from __future__ import annotations

import pytest

from messaging.group_lag import LagReading, PartitionLag
from messaging.group_progress import GroupProgress


class Broker:
    """Stands in for GroupLag.read: partition -> (where the group resumes, end offset)."""

    def __init__(self) -> None:
        self.partitions: dict[int, tuple[int, int]] = {0: (0, 0)}
        self.down = False
        self.reads = 0

    def read(self) -> LagReading:
        self.reads += 1
        if self.down:
            raise RuntimeError("broker unreachable")
        return LagReading("orders", {p: PartitionLag(p, at, at, end) for p, (at, end) in self.partitions.items()})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def progress(broker: Broker, clock: Clock) -> GroupProgress:
    return GroupProgress(broker.read, "orders", "fulfillment", stall_seconds=30, max_age=1.0, clock=clock)


def test_lag_is_end_minus_committed_per_partition(broker, clock):
    broker.partitions = {0: (40, 100), 1: (7, 7)}
    report = progress(broker, clock).report()
    assert report.lag == {0: 60, 1: 0} and report.total == 60
    assert not report.stalled and report.reason is None


def test_lag_with_a_committed_offset_standing_still_beyond_the_stall_time_is_stalled(broker, clock):
    watch = progress(broker, clock)
    broker.partitions = {0: (40, 100)}
    assert not watch.report().stalled
    clock.now += 29
    assert not watch.report().stalled
    clock.now += 2
    report = watch.report()
    assert report.stalled == [0]
    assert report.last_progress_age_s == pytest.approx(31)
    assert "stalled" in report.reason and "partition(s) 0 (lag 60)" in report.reason


def test_a_moving_committed_offset_is_progress(broker, clock):
    watch = progress(broker, clock)
    broker.partitions = {0: (40, 100)}
    watch.report()
    clock.now += 31
    broker.partitions = {0: (41, 100)}
    report = watch.report()
    assert not report.stalled and report.last_progress_age_s == 0


def test_caught_up_is_progress_however_long_nothing_arrives(broker, clock):
    watch = progress(broker, clock)
    broker.partitions = {0: (100, 100)}
    watch.report()
    clock.now += 600
    report = watch.report()
    assert not report.stalled and report.last_progress_age_s == 0


def test_only_the_lagging_partition_that_stands_still_is_stalled(broker, clock):
    watch = progress(broker, clock)
    broker.partitions = {0: (10, 50), 1: (10, 50)}
    watch.report()
    clock.now += 40
    broker.partitions = {0: (10, 50), 1: (20, 50)}
    assert watch.report().stalled == [0]


def test_stalled_again_once_progress_stops_after_resuming(broker, clock):
    watch = progress(broker, clock)
    broker.partitions = {0: (10, 50)}
    watch.report()
    clock.now += 40
    assert watch.report().stalled == [0]
    broker.partitions = {0: (30, 50)}
    clock.now += 1
    assert watch.report().stalled == []
    clock.now += 31
    assert watch.report().stalled == [0]


def test_readings_are_reused_for_at_most_max_age(broker, clock):
    watch = progress(broker, clock)
    watch.report()
    clock.now += 0.5
    report = watch.report()
    assert broker.reads == 1 and report.read_age_s == pytest.approx(0.5)
    clock.now += 0.6
    watch.report()
    assert broker.reads == 2


def test_an_unreachable_broker_gives_no_figures_and_no_stall(broker, clock):
    watch = progress(broker, clock)
    broker.partitions = {0: (10, 50)}
    watch.report()
    broker.down = True
    clock.now += 60
    report = watch.report()
    assert report.lag is None and report.total is None and not report.stalled
    assert "unreachable" in report.error
    broker.down = False  # the offset did not move while the broker was away: still stalled
    clock.now += 1
    assert watch.report().stalled == [0]


def test_a_stall_and_the_recovery_are_logged_once_each_not_per_reading(broker, clock, caplog):
    watch = progress(broker, clock)
    broker.partitions = {0: (40, 100)}
    with caplog.at_level("WARNING", logger="messaging.group_progress"):
        for _ in range(5):  # readings before, at and after the stall time
            watch.report()
            clock.now += 10
        broker.partitions = {0: (100, 100)}
        for _ in range(3):
            watch.report()
            clock.now += 10
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "partition(s) 0 (lag 60)" in lines[0] and "for over 30 s" in lines[0]
    assert "progress again" in lines[1]
