"""Which headers a dead-lettered record carries its reason and origin in (the names are the topology's)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class DeadLetterHeaders:
    """The header name of each fact a dead-letter record carries; written in this order, values as UTF-8 text.

    error_type: the kind of failure; error_message: its detail (at most 2,000 characters); original_topic,
    original_partition, original_offset, original_timestamp: where the record came from and its timestamp
    (epoch ms); dead_lettered_at: when it was parked (epoch ms). Numbers are written in decimal.
    """

    error_type: str
    error_message: str
    original_topic: str
    original_partition: str
    original_offset: str
    original_timestamp: str
    dead_lettered_at: str

    def names(self) -> list[str]:
        """Every header name, in the order they are written."""
        return [str(value) for value in dataclasses.astuple(self)]
