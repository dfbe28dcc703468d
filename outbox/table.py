"""The outbox table and the rows that carry events in it.

A service adds the table to its own metadata (so its store and Alembic's comparison see it) and inserts
rows in the transaction that changes the state the event describes. The table itself is created by the
shared `outbox` migration branch (outbox/migrations/).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Connection, Float, Insert, Integer, MetaData, String, Table, Text, insert

from observability.trace_context import capture


def outbox_table(metadata: MetaData) -> Table:
    """The `outbox` table, defined in metadata.

    Columns: id (insertion order, which is publication order), topic, key, event_type (the event model's class
    name, which picks its codec), payload (the event as JSON), created_at (epoch s), claimed_until (epoch s
    until which a relay owns the row; NULL = free) and claimed_by (the owner, see outbox.ownership).

    Failures (outbox.failures classifies them): attempts (failed publication attempts), first_failed_at (epoch s
    of the first), failure_reason (the last one's cause) and parked_at (epoch s when the row was set aside
    because publishing it can never succeed; NULL = not parked). A parked row is never claimed, and neither
    is a later row with its key, until it is retried or discarded (outbox.parking).

    trace_context: the W3C trace context of the work that wrote the row, in observability.trace_context's stored
    form (JSON of `traceparent` and `tracestate`); the relay sends it as the record's headers. NULL: none (rows
    written before the column existed, or outside any trace), and the record goes out without them.
    """
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("claimed_until", Float, nullable=True, index=True),
        Column("claimed_by", String(255), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("first_failed_at", Float, nullable=True),
        Column("failure_reason", Text, nullable=True),
        Column("parked_at", Float, nullable=True, index=True),
        Column("trace_context", Text, nullable=True),
    )


@dataclass(frozen=True)
class OutboxEntry:
    """An event to write to the outbox: it goes to topic under key (e.g. the order id); event_type is the event
    model's class name (it picks the relay's codec), payload the event as JSON, created_at when it was written
    (epoch s), trace_context the W3C trace context the event continues (observability.trace_context's stored
    form; None: none)."""

    topic: str
    key: str
    event_type: str
    payload: str
    created_at: float
    trace_context: str | None = None

    @classmethod
    def of(cls, topic: str, key: str, event: BaseModel, context: Context | None = None) -> OutboxEntry:
        """The entry that carries event to topic under key, written now, in the trace of context (default: the
        current context, so make the entry where the work's span is current, not on a thread that does not
        share it); insert it (add_to_outbox) in the transaction that changes the state."""
        return cls(topic, key, type(event).__name__, event.model_dump_json(), time.time(), capture(context))

    def columns(self) -> dict[str, Any]:
        """The entry as the outbox row's column values: unclaimed, no failed attempts."""
        return {
            "topic": self.topic,
            "key": self.key,
            "event_type": self.event_type,
            "payload": self.payload,
            "created_at": self.created_at,
            "claimed_until": None,
            "claimed_by": None,
            "attempts": 0,
            "trace_context": self.trace_context,
        }


def add_to_outbox(conn: Connection, table: Table, entries: Sequence[OutboxEntry]) -> None:
    """Insert entries into table on conn, inside the caller's transaction (several in one executemany); none is
    a no-op."""
    if entries:
        conn.execute(_insert(table), [entry.columns() for entry in entries])


@functools.lru_cache(maxsize=64)
def _insert(table: Table) -> Insert:
    """The INSERT into table, built once per table (persistence.statements says why); tables hash by identity."""
    return insert(table)
