"""Whether a consumer group makes progress: its lag read from the broker, and how long each lagging
partition's committed offset has stood still.

A consumer can be stuck while its process looks healthy: a batch it re-reads and cannot finish, work that
hangs, a partition it was given and never fetches. Then records wait (lag > 0) and the committed offsets
stop moving. A partition is stalled when it has lag and its committed offset has not changed for longer
than stall_seconds; a partition without lag is up to date, which counts as progress.

Readings come from messaging.group_lag.GroupLag (a client of its own, independent of the consumer) and are
kept at most max_age seconds, so a health endpoint polled often does not query the broker on every call.
Progress is noticed between readings: how long an offset has stood still is known to within the time
between two readings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from messaging.group_lag import LagReading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressReport:
    """The group's progress at one reading.

    lag: records not committed per partition (None when the broker could not be read; then error says why).
    last_progress_age_s: seconds since the committed offset of the longest-waiting lagging partition last
    moved (0 when no partition lags; None when unknown). stalled: partitions with lag whose committed offset
    has not moved for more than stall_seconds. read_age_s: age of the reading the figures come from.
    """

    topic: str
    group: str
    stall_seconds: float
    lag: dict[int, int] | None
    last_progress_age_s: float | None
    stalled: list[int] = field(default_factory=list)
    read_age_s: float | None = None
    error: str | None = None

    @property
    def total(self) -> int | None:
        """Records not committed over all partitions, None when unknown."""
        return None if self.lag is None else sum(self.lag.values())

    @property
    def reason(self) -> str | None:
        """Why the group is not making progress, in one sentence; None while it is."""
        if not self.stalled:
            return None
        assert self.lag is not None
        partitions = ", ".join(f"{p} (lag {self.lag[p]})" for p in self.stalled)
        return (
            f"consumer group {self.group} stalled on {self.topic}: partition(s) {partitions} have records waiting "
            f"and no committed offset moved for {self.last_progress_age_s:.0f} s (limit {self.stall_seconds:g} s)"
        )


class GroupProgress:
    """Reads the group's lag (read(): a LagReading, raising when the broker cannot tell) at most every
    max_age seconds and tracks the progress of each partition's committed offset. Thread-safe; a call
    while another is reading answers with the last report instead of waiting. close: releases what read
    uses (e.g. GroupLag.close), called by close()."""

    def __init__(
        self,
        read: Callable[[], LagReading],
        topic: str,
        group: str,
        stall_seconds: float,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._read = read
        self._close = close
        self._topic = topic
        self._group = group
        self._stall_seconds = stall_seconds
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._resume_at: dict[int, int] = {}
        self._progress_at: dict[int, float] = {}
        self._report: ProgressReport | None = None
        self._read_at: float | None = None

    def report(self) -> ProgressReport:
        """The group's progress, from a reading at most max_age seconds old. Blocking (broker requests)."""
        now = self._clock()
        if self._fresh(now):
            return self._aged(now)
        if not self._lock.acquire(blocking=self._report is None):
            return self._aged(now)  # another call is reading: its result comes soon enough
        try:
            if not self._fresh(self._clock()):
                self._refresh()
            return self._aged(self._clock())
        finally:
            self._lock.release()

    def close(self) -> None:
        """Release the broker client (blocking)."""
        if self._close is not None:
            with self._lock:
                self._close()

    def _log_change(self, stalled: list[int], partitions: Mapping[int, Any]) -> None:
        """One line when partitions stall and one when they all move again, not one per reading."""
        before = self._report.stalled if self._report is not None else []
        if stalled and stalled != before:
            lags = ", ".join(f"{partition} (lag {partitions[partition].lag})" for partition in stalled)
            log.warning(
                "%s: group %s has not moved partition(s) %s for over %g s",
                self._topic,
                self._group,
                lags,
                self._stall_seconds,
            )
        elif before and not stalled:
            log.warning("%s: group %s makes progress again on every partition", self._topic, self._group)

    def _fresh(self, now: float) -> bool:
        return self._report is not None and self._read_at is not None and now - self._read_at < self._max_age

    def _aged(self, now: float) -> ProgressReport:
        assert self._report is not None
        age = None if self._read_at is None else round(now - self._read_at, 3)
        return ProgressReport(**{**self._report.__dict__, "read_age_s": age})

    def _refresh(self) -> None:
        try:
            reading = self._read()
        except Exception as exc:
            log.debug("lag of %s for %s unavailable: %s", self._topic, self._group, exc)
            self._report = ProgressReport(
                self._topic, self._group, self._stall_seconds, None, None, error=f"lag unavailable: {exc}"[:200]
            )
            self._read_at = self._clock()
            return
        now = self._clock()
        for partition, p in reading.partitions.items():
            moved = self._resume_at.get(partition) != p.resume_at
            if moved or p.lag == 0 or partition not in self._progress_at:
                self._progress_at[partition] = now
            self._resume_at[partition] = p.resume_at
        lagging = [partition for partition, p in reading.partitions.items() if p.lag > 0]
        waited = {partition: now - self._progress_at[partition] for partition in lagging}
        stalled = sorted(partition for partition, seconds in waited.items() if seconds > self._stall_seconds)
        self._log_change(stalled, reading.partitions)
        self._report = ProgressReport(
            self._topic,
            self._group,
            self._stall_seconds,
            {partition: p.lag for partition, p in sorted(reading.partitions.items())},
            round(max(waited.values()), 1) if waited else 0.0,
            stalled,
        )
        self._read_at = now
