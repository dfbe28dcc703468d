"""Parked outbox rows: what health reports about the outbox, and the repair functions an operator's tool calls.

The relay parks a row whose event can never be published (outbox.failures says which failures are permanent):
it stays in the table with its reason, is never claimed again, and holds back the later rows of its key (their
events must not overtake it). Repair is a decision per row: retry it (after the cause is fixed: a schema the
registry now accepts, a raised size limit) or discard it (its event is never published; the rows behind it go
on). Every function takes the service's engine and outbox table (its store's `outbox`) and is blocking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, Table, delete, func, select, update

from persistence.engine import write_transaction


@dataclass(frozen=True)
class ParkedRow:
    """One parked row: id, topic, key (e.g. the order id), event_type, failure_reason (the failure that parked
    it), attempts (failed attempts so far), first_failed_at and parked_at (epoch s), rows_behind (later rows of
    the same key it holds back) and payload (the event as JSON)."""

    id: int
    topic: str
    key: str
    event_type: str
    failure_reason: str | None
    attempts: int
    first_failed_at: float | None
    parked_at: float
    rows_behind: int
    payload: str


@dataclass(frozen=True)
class OutboxHealth:
    """The outbox as readiness reports it.

    backlog: rows waiting to be published (not parked); oldest_unpublished_age_s: seconds since the oldest of
    them was written (None when there is none), which keeps growing while its failures are transient; parked:
    parked rows; oldest_parked_reason / oldest_parked_at (epoch s): the first parked row's, None without any.
    """

    backlog: int
    oldest_unpublished_age_s: float | None
    parked: int
    oldest_parked_reason: str | None
    oldest_parked_at: float | None


def outbox_health(engine: Engine, table: Table, clock: Callable[[], float] = time.time) -> OutboxHealth:
    """The OutboxHealth of table now (clock: epoch s). Two aggregate queries (parked_at is indexed)."""
    waiting = table.c.parked_at.is_(None)
    with engine.connect() as conn:
        backlog, oldest_created = conn.execute(
            select(func.count(), func.min(table.c.created_at)).select_from(table).where(waiting)
        ).one()
        parked = int(
            conn.execute(select(func.count()).select_from(table).where(table.c.parked_at.is_not(None))).scalar_one()
        )
        first = (
            conn.execute(
                select(table.c.failure_reason, table.c.parked_at)
                .where(table.c.parked_at.is_not(None))
                .order_by(table.c.parked_at, table.c.id)
                .limit(1)
            ).first()
            if parked
            else None
        )
    age = None if oldest_created is None else max(0.0, clock() - float(oldest_created))
    return OutboxHealth(
        int(backlog),
        age,
        parked,
        first.failure_reason if first else None,
        float(first.parked_at) if first else None,
    )


def list_parked(engine: Engine, table: Table, limit: int = 100, after_id: int = 0) -> list[ParkedRow]:
    """Up to limit parked rows with ids above after_id, in id order (page on with the last id seen)."""
    behind = table.alias("behind")
    rows_behind = (
        select(func.count())
        .select_from(behind)
        .where(behind.c.key == table.c.key, behind.c.id > table.c.id)
        .scalar_subquery()
    )
    query = (
        select(
            table.c.id,
            table.c.topic,
            table.c.key,
            table.c.event_type,
            table.c.failure_reason,
            table.c.attempts,
            table.c.first_failed_at,
            table.c.parked_at,
            rows_behind.label("rows_behind"),
            table.c.payload,
        )
        .where(table.c.parked_at.is_not(None), table.c.id > after_id)
        .order_by(table.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            ParkedRow(
                r.id,
                r.topic,
                r.key,
                r.event_type,
                r.failure_reason,
                int(r.attempts),
                r.first_failed_at,
                float(r.parked_at),
                int(r.rows_behind),
                r.payload,
            )
            for r in conn.execute(query)
        ]


def retry_parked(engine: Engine, table: Table, row_id: int) -> bool:
    """Unpark the row row_id: the relay claims it (and then the rows behind it) again, in order; its attempts
    and failure reason stay as a record. Returns False when no parked row has that id (never parked, already
    retried or discarded). A running relay picks it up at its next poll (within a second)."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(table)
            .where(table.c.id == row_id, table.c.parked_at.is_not(None))
            .values(parked_at=None, claimed_until=None, claimed_by=None)
        )
    return bool(result.rowcount)


def discard_parked(engine: Engine, table: Table, row_id: int) -> ParkedRow | None:
    """Delete the parked row row_id for good: its event is never published, and the later rows of its key are
    relayed. Returns the row as it was (keep it for the record), None when no parked row has that id."""
    found = next(iter(_parked_by_id(engine, table, row_id)), None)
    if found is None:
        return None
    with write_transaction(engine) as conn:
        result = conn.execute(delete(table).where(table.c.id == row_id, table.c.parked_at.is_not(None)))
    return found if result.rowcount else None


def _parked_by_id(engine: Engine, table: Table, row_id: int) -> list[ParkedRow]:
    return [row for row in list_parked(engine, table, limit=1, after_id=row_id - 1) if row.id == row_id]
