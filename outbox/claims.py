"""The SQL of the relay's claims on outbox rows.

A claim is a lease: `claimed_until` (epoch s) and `claimed_by` (the owner, see outbox.ownership). Rows are
claimed in id order with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so relays sharing a table never claim the
same row; a lease that runs out frees its row for anyone. Every write is its own short transaction.

A parked row (`parked_at` set: publishing it can never succeed) is never claimed, nor is any later row with
its key, so the events of one key never overtake each other; the rows of other keys go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, delete, exists, func, select, update

from persistence.engine import write_transaction

# Rows per statement when deleting or freeing by id (keeps IN lists within every database's limits).
_CHUNK = 500


@dataclass(frozen=True)
class ClaimedRow:
    """An outbox row claimed for publication: id (insertion order, which is publication order), topic, key,
    event_type (picks the codec), payload (the event as JSON), created_at (epoch s when it was written) and
    trace_context (the W3C trace context it continues, observability.trace_context's stored form; None: none)."""

    id: int
    topic: str
    key: str
    event_type: str
    payload: str
    created_at: float
    trace_context: str | None = None


class OutboxClaims:
    """Claims on the rows of one outbox table, taken in the name of owner."""

    def __init__(self, engine: Engine, table: Table, owner: str) -> None:
        self._engine = engine
        self._table = table
        self._owner = owner

    def claim(self, limit: int, lease_seconds: float) -> list[ClaimedRow]:
        """Claim up to limit free rows (never claimed, or their lease ran out) for lease_seconds: not parked,
        and with no parked row of the same key before them. Returns them in id order (created_at in epoch s).
        """
        now = time.time()
        table = self._table
        free = (table.c.claimed_until.is_(None)) | (table.c.claimed_until < now)
        parked = table.alias("parked")
        # `parked_at > 0` (parked rows only, few) is what the planner should search by, through its index; the
        # id comparison is an expression so that SQLite does not scan every row before this one instead.
        behind_parked = exists().where(
            parked.c.parked_at > 0, parked.c.key == table.c.key, (parked.c.id + 0) < table.c.id
        )
        ids = (
            select(table.c.id)
            .where(free, (table.c.parked_at + 0).is_(None), ~behind_parked)  # an expression: walk by id
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with write_transaction(self._engine) as conn:
            rows = conn.execute(
                update(table)
                .where(table.c.id.in_(ids))
                .values(claimed_until=now + lease_seconds, claimed_by=self._owner)
                .returning(
                    table.c.id,
                    table.c.topic,
                    table.c.key,
                    table.c.event_type,
                    table.c.payload,
                    table.c.created_at,
                    table.c.trace_context,
                )
            ).all()
        return sorted(
            (
                ClaimedRow(r.id, r.topic, r.key, r.event_type, r.payload, float(r.created_at), r.trace_context)
                for r in rows
            ),
            key=lambda r: r.id,
        )

    def delete(self, ids: Sequence[int]) -> None:
        """Delete the rows with these ids (their events are published)."""
        if ids:
            with write_transaction(self._engine) as conn:
                for chunk in _chunks(ids):
                    conn.execute(delete(self._table).where(self._table.c.id.in_(chunk)))

    def release(self, ids: Sequence[int], failure: str | None = None) -> None:
        """Free the rows with these ids for the next claim, whoever holds them.

        failure: why publishing them failed this time (a transient failure, they are retried): counted in their
        attempts and kept as their failure_reason, with first_failed_at set on the first one.
        """
        if ids:
            table = self._table
            values: dict[str, Any] = {"claimed_until": None, "claimed_by": None}
            if failure is not None:
                values.update(_failed_once(table, failure))
            with write_transaction(self._engine) as conn:
                for chunk in _chunks(ids):
                    conn.execute(update(table).where(table.c.id.in_(chunk)).values(**values))

    def park(self, ids: Sequence[int], reason: str) -> None:
        """Set the rows with these ids aside for good (reason: why they can never be published): they are
        freed and counted as failed, and neither they nor later rows of their keys are claimed again until
        outbox.parking retries or discards them."""
        if ids:
            table = self._table
            values = {
                "claimed_until": None,
                "claimed_by": None,
                "parked_at": time.time(),
                **_failed_once(table, reason),
            }
            with write_transaction(self._engine) as conn:
                for chunk in _chunks(ids):
                    conn.execute(update(table).where(table.c.id.in_(chunk)).values(**values))

    def release_owners(self, is_gone: Callable[[str], bool]) -> int:
        """Free every claim whose owner is_gone says is gone; returns how many owners that was."""
        table = self._table
        with self._engine.connect() as conn:
            owners = conn.execute(select(table.c.claimed_by).where(table.c.claimed_by.is_not(None)).distinct())
            dead = [owner for (owner,) in owners if is_gone(owner)]
        if dead:
            with write_transaction(self._engine) as conn:
                conn.execute(
                    update(table).where(table.c.claimed_by.in_(dead)).values(claimed_until=None, claimed_by=None)
                )
        return len(dead)

    def backlog(self) -> int:
        """Rows waiting to be published: events accepted, not yet confirmed by the broker, and not parked."""
        table = self._table
        with self._engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(table).where(table.c.parked_at.is_(None))).scalar_one()
            )


def _failed_once(table: Table, reason: str) -> dict[str, Any]:
    """The column values that count one more failed attempt with reason."""
    return {
        "attempts": table.c.attempts + 1,
        "first_failed_at": func.coalesce(table.c.first_failed_at, time.time()),
        "failure_reason": reason[:1000],
    }


def _chunks(items: Sequence[int]) -> list[Sequence[int]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
