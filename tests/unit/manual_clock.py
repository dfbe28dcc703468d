"""A clock for use-case tests: the UTC time the code under test reads, which moves only when told."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    """Call it for the current time (start until advanced)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
