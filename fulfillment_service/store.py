"""Durable fulfillment state (SQLAlchemy Core): one row per order, plus the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    insert,
    select,
    update,
)

from messaging.outbox import outbox_table

metadata = MetaData()

fulfillments = Table(
    "fulfillments",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),  # Pending, Shipped, Delivered, Failed
    Column("tracking_number", String(200)),
    Column("carrier", String(200)),
    Column("estimated_delivery", BigInteger),  # epoch ms
    Column("failure_reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    # When a Pending order is due for its next provider call (epoch s). A running call pushes it past the
    # call timeout, so an order whose worker died mid-call is picked up again.
    Column("next_attempt_at", Float),
    Column("deliver_at", Float),  # simulated delivery due (epoch s)
    Column("sequence", Integer, nullable=False, default=0),  # of the last event published
    Column("order_timestamp", BigInteger),  # OrderCreated timestamp, epoch ms
    Column("picked_up_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_fulfillments_due", "status", "next_attempt_at"),
    Index("ix_fulfillments_deliver", "deliver_at"),
)

outbox = outbox_table(metadata)

TERMINAL = frozenset({"Shipped", "Delivered", "Failed"})


def get(conn: Connection, order_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(fulfillments).where(fulfillments.c.order_id == order_id)).mappings().first()
    return dict(row) if row else None


def insert_pending(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(fulfillments), [row])


def update_if_pending(conn: Connection, order_id: str, values: dict[str, Any]) -> bool:
    """Change a Pending order; False when it is no longer Pending (another worker finished it)."""
    result = conn.execute(
        update(fulfillments)
        .where(and_(fulfillments.c.order_id == order_id, fulfillments.c.status == "Pending"))
        .values(**values)
    )
    return result.rowcount == 1


def claim_due_for_retry(
    conn: Connection, now: float, lease_until: float, limit: int, busy: set[str]
) -> list[dict[str, Any]]:
    """Claim up to limit Pending orders whose next attempt is due (not those in busy) until lease_until.

    One conditional UPDATE: an instance that read the same due rows a moment earlier and claimed them
    first leaves them not due any more, so they are claimed once even by several instances (a SELECT and
    a separate UPDATE would let two instances call the provider for the same order).
    """
    is_due = and_(fulfillments.c.status == "Pending", fulfillments.c.next_attempt_at <= now)
    candidates = select(fulfillments.c.order_id).where(is_due)
    if busy:
        candidates = candidates.where(fulfillments.c.order_id.not_in(busy))
    candidates = candidates.order_by(fulfillments.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    rows = conn.execute(
        update(fulfillments)
        .where(and_(fulfillments.c.order_id.in_(candidates.scalar_subquery()), is_due))
        .values(next_attempt_at=lease_until)
        .returning(*fulfillments.c)
    ).mappings()
    return [dict(r) for r in rows]


def due_for_delivery(conn: Connection, now: float, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(fulfillments)
        .where(and_(fulfillments.c.status == "Shipped", fulfillments.c.deliver_at <= now))
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]
