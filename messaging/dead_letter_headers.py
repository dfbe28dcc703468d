"""Which headers a dead-lettered record carries its reason and origin in (the names are the topology's)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class DeadLetterHeaders:
    """The header name of each fact a dead-letter record carries; written in this order, values as UTF-8 text.

    original_topic, original_partition, original_offset: where the record came from; error_type: the kind of
    failure; error_message: its detail (at most 2,000 characters); original_timestamp: the record's timestamp
    (epoch ms); dead_lettered_at: when it was parked (epoch ms); original_size: the size of the record's value
    in bytes; truncated: `true` when the copy's value (or key) was cut to fit the producer's limit, else
    `false`. Numbers are written in decimal, as Kafka Connect's SimpleHeaderConverter writes them.
    """

    original_topic: str
    original_partition: str
    original_offset: str
    error_type: str
    error_message: str
    original_timestamp: str
    dead_lettered_at: str
    original_size: str
    truncated: str

    def names(self) -> list[str]:
        """Every header name, in the order they are written."""
        return [str(value) for value in dataclasses.astuple(self)]
