"""Exponential backoff between attempts at something that keeps failing (a broker, the registry, a handler)."""

from __future__ import annotations


class Backoff:
    """A delay that doubles on every failure, from first up to maximum seconds, and drops to 0 on success.

    `failed()` gives the next delay: first after a success, then twice the last one, never above maximum.
    A caller may name a larger first delay for one kind of failure (`failed(first=0.5)`).
    """

    def __init__(self, first: float = 0.2, maximum: float = 5.0) -> None:
        if not 0 < first <= maximum:
            raise ValueError(f"need 0 < first <= maximum, got first={first}, maximum={maximum}")
        self.first = first
        self.maximum = maximum
        self.delay = 0.0

    def failed(self, first: float | None = None) -> float:
        """Another failure: the delay (seconds) to wait before the next attempt."""
        self.delay = min(max(self.delay * 2, self.first if first is None else first), self.maximum)
        return self.delay

    def succeeded(self) -> None:
        """The attempt worked: the next failure starts from first again."""
        self.delay = 0.0
