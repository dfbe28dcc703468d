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

from sqlalchemy import Engine, Integer, Table, bindparam, delete, exists, func, select, update
from sqlalchemy.sql.dml import ReturningUpdate

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
    """Claims on the rows of one outbox table, taken in the name of owner.

    Its statements are built once, here, and bound per call (persistence.statements says why); the ids of a
    delete or release go in as one expanding IN parameter per chunk.
    """

    def __init__(self, engine: Engine, table: Table, owner: str) -> None:
        self._engine = engine
        self._table = table
        self._owner = owner
        self._claim = _claim_statement(table)
        by_ids = table.c.id.in_(bindparam("b_ids", expanding=True))
        self._delete = delete(table).where(by_ids)
        free = update(table).where(by_ids).values(claimed_until=None, claimed_by=None)
        self._release = free
        failed_once = {
            "attempts": table.c.attempts + 1,
            "first_failed_at": func.coalesce(table.c.first_failed_at, bindparam("b_now")),
            "failure_reason": bindparam("b_reason"),
        }
        self._release_failed = free.values(failed_once)
        self._park = free.values({**failed_once, "parked_at": bindparam("b_now")})

    def claim(self, limit: int, lease_seconds: float) -> list[ClaimedRow]:
        """Claim up to limit free rows (never claimed, or their lease ran out) for lease_seconds: not parked,
        and with no parked row of the same key before them. Returns them in id order (created_at in epoch s).
        """
        now = time.time()
        params = {"b_now": now, "b_limit": limit, "b_until": now + lease_seconds, "b_owner": self._owner}
        with write_transaction(self._engine) as conn:
            rows = conn.execute(self._claim, params).all()
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
                    conn.execute(self._delete, {"b_ids": list(chunk)})

    def release(self, ids: Sequence[int], failure: str | None = None) -> None:
        """Free the rows with these ids for the next claim, whoever holds them.

        failure: why publishing them failed this time (a transient failure, they are retried): counted in their
        attempts and kept as their failure_reason, with first_failed_at set on the first one.
        """
        if ids:
            if failure is None:
                statement, params = self._release, {}
            else:
                statement, params = self._release_failed, _failed_once(failure)
            with write_transaction(self._engine) as conn:
                for chunk in _chunks(ids):
                    conn.execute(statement, {**params, "b_ids": list(chunk)})

    def park(self, ids: Sequence[int], reason: str) -> None:
        """Set the rows with these ids aside for good (reason: why they can never be published): they are
        freed and counted as failed, and neither they nor later rows of their keys are claimed again until
        outbox.parking retries or discards them."""
        if ids:
            params = _failed_once(reason)
            with write_transaction(self._engine) as conn:
                for chunk in _chunks(ids):
                    conn.execute(self._park, {**params, "b_ids": list(chunk)})

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


def _claim_statement(table: Table) -> ReturningUpdate:
    """The claim of table's first free rows (parameters b_now, b_limit, b_until and b_owner; see claim)."""
    now = bindparam("b_now")
    free = (table.c.claimed_until.is_(None)) | (table.c.claimed_until < now)
    parked = table.alias("parked")
    # `parked_at > 0` (parked rows only, few) is what the planner should search by, through its index; the
    # id comparison is an expression so that SQLite does not scan every row before this one instead.
    behind_parked = exists().where(parked.c.parked_at > 0, parked.c.key == table.c.key, (parked.c.id + 0) < table.c.id)
    ids = (
        select(table.c.id)
        .where(free, (table.c.parked_at + 0).is_(None), ~behind_parked)  # an expression: walk by id
        .order_by(table.c.id)
        .limit(bindparam("b_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(table)
        .where(table.c.id.in_(ids))
        .values(claimed_until=bindparam("b_until"), claimed_by=bindparam("b_owner"))
        .returning(
            table.c.id,
            table.c.topic,
            table.c.key,
            table.c.event_type,
            table.c.payload,
            table.c.created_at,
            table.c.trace_context,
        )
    )


def _failed_once(reason: str) -> dict[str, Any]:
    """The parameters that count one more failed attempt with reason, now (epoch s)."""
    return {"b_now": time.time(), "b_reason": reason[:1000]}


def _chunks(items: Sequence[int]) -> list[Sequence[int]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
