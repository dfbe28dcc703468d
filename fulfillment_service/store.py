"""Durable fulfillment state (SQLAlchemy Core): the fulfillments table, the outbox, and every query on them.

Rows cross this boundary as domain `Fulfillment`s, whose times are UTC datetimes. The columns keep their
units: epoch seconds (float) for next_attempt_at, deliver_at, picked_up_at, updated_at, call_started_at and
cancel_requested_at, epoch milliseconds (integer) for estimated_delivery and order_timestamp, JSON text (the
contract's camelCase ShippingAddress; NULL without one) for the destination; they are converted here and nowhere
else.

Every function runs on the caller's Connection, inside the caller's transaction; SQLAlchemy's errors propagate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    and_,
    bindparam,
    select,
    update,
)

from contracts.order_rules import address_document, address_from_document
from fulfillment_service.domain import Destination, Fulfillment, Status
from messaging.dead_letter_spool import dead_letter_spool_table
from outbox.table import outbox_table
from persistence.statements import InsertIfAbsent

metadata = MetaData()

fulfillments = Table(
    "fulfillments",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),  # Pending, Shipped, Delivered, Failed, Cancelled
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
    Column("destination", Text),  # JSON (camelCase ShippingAddress of the OrderCreated); NULL: no address
    Column("trace_context", Text),  # the W3C trace context the order was picked up in (JSON), see domain
    Column("call_started_at", Float),  # a provider call under way since (epoch s); NULL: none
    Column("cancel_requested_at", Float),  # an OrderCancelled processed then (epoch s)
    Column("cancel_refused", Text),  # why that cancellation was refused
    Index("ix_fulfillments_due", "status", "next_attempt_at"),
    Index("ix_fulfillments_deliver", "deliver_at"),
)

outbox = outbox_table(metadata)
dead_letter_spool = dead_letter_spool_table(metadata)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Built once (persistence.statements): each call binds its values. The b_ names keep the WHERE clauses' parameters
# apart from the column names that update_if_status's parameters set.
_BY_ORDER_ID = fulfillments.c.order_id == bindparam("b_order_id")
_GET = select(fulfillments).where(_BY_ORDER_ID)
_GET_FOR_UPDATE = _GET.with_for_update()
_INSERT_IF_ABSENT = InsertIfAbsent(fulfillments, fulfillments.c.order_id)
# No values(): the SET clause names the columns of the parameters it is executed with (one compiled form per set).
_UPDATE_IF_STATUS = update(fulfillments).where(_BY_ORDER_ID, fulfillments.c.status == bindparam("b_expected"))


def get(conn: Connection, order_id: uuid.UUID, *, for_update: bool = False) -> Fulfillment | None:
    """The order's fulfillment, or None when the order was never picked up. for_update: lock the row until the
    transaction ends (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer at a time anyway)."""
    query = _GET_FOR_UPDATE if for_update else _GET
    row = conn.execute(query, {"b_order_id": str(order_id)}).mappings().first()
    return _fulfillment(row) if row else None


def insert_if_absent(conn: Connection, fulfillment: Fulfillment) -> Fulfillment | None:
    """Insert a new fulfillment; None when inserted, the order's existing fulfillment (left as it is) if any.

    One statement when the order is new (INSERT ... ON CONFLICT DO NOTHING, persistence.statements), a read of
    the existing row after it otherwise. On PostgreSQL a row another transaction is inserting is waited for and
    then returned as the existing one (no IntegrityError)."""
    if conn.execute(_INSERT_IF_ABSENT.on(conn), to_columns(fulfillment)).rowcount == 1:
        return None
    existing = get(conn, fulfillment.order_id)
    if existing is None:  # fulfillments are never deleted: a conflicting row stays
        raise RuntimeError(f"order {fulfillment.order_id}: insert skipped for a row that cannot be read")
    return existing


def update_if_status(conn: Connection, fulfillment: Fulfillment, expected: Status, fields: Iterable[str]) -> bool:
    """Write the named fields of fulfillment to its row if the row's status is still expected; False (and
    nothing written) when it is not, e.g. because another worker finished the order first. Raises ValueError
    when fields names none."""
    values = to_columns(fulfillment, fields)
    if not values:
        raise ValueError("no fields to write")
    values["b_order_id"] = str(fulfillment.order_id)
    values["b_expected"] = expected.value
    return conn.execute(_UPDATE_IF_STATUS, values).rowcount == 1


def claim_due_for_retry(
    conn: Connection, now: datetime, lease_until: datetime, limit: int, busy: Collection[uuid.UUID]
) -> list[Fulfillment]:
    """Claim up to limit Pending orders whose next attempt is due by now (not those in busy) until
    lease_until; they come back with next_attempt_at = lease_until, earliest due first.

    One conditional UPDATE: an instance that read the same due rows a moment earlier and claimed them
    first leaves them not due any more, so they are claimed once even by several instances (a SELECT and
    a separate UPDATE would let two instances call the provider for the same order).
    """
    is_due = and_(fulfillments.c.status == Status.Pending.value, fulfillments.c.next_attempt_at <= _seconds(now))
    candidates = select(fulfillments.c.order_id).where(is_due)
    if busy:
        candidates = candidates.where(fulfillments.c.order_id.not_in([str(order_id) for order_id in busy]))
    candidates = candidates.order_by(fulfillments.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    rows = conn.execute(
        update(fulfillments)
        .where(and_(fulfillments.c.order_id.in_(candidates.scalar_subquery()), is_due))
        .values(next_attempt_at=_seconds(lease_until))
        .returning(*fulfillments.c)
    ).mappings()
    return [_fulfillment(row) for row in rows]


def due_for_delivery(conn: Connection, now: datetime, limit: int) -> list[Fulfillment]:
    """Up to limit Shipped orders whose simulated delivery is due by now."""
    rows = conn.execute(
        select(fulfillments)
        .where(and_(fulfillments.c.status == Status.Shipped.value, fulfillments.c.deliver_at <= _seconds(now)))
        .limit(limit)
    ).mappings()
    return [_fulfillment(row) for row in rows]


def to_columns(fulfillment: Fulfillment, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Column values of fulfillment (in the columns' units), all of them or only the named fields (only those
    are converted). Raises KeyError for a name that is no column."""
    names = _COLUMN_VALUES if fields is None else fields
    return {name: _COLUMN_VALUES[name](fulfillment) for name in names}


# How each column's value is made from a Fulfillment (the column's unit; see the module docstring).
_COLUMN_VALUES: dict[str, Callable[[Fulfillment], Any]] = {
    "order_id": lambda f: str(f.order_id),
    "status": lambda f: f.status.value,
    "tracking_number": lambda f: f.tracking_number,
    "carrier": lambda f: f.carrier,
    "estimated_delivery": lambda f: _millis(f.estimated_delivery),
    "failure_reason": lambda f: f.failure_reason,
    "attempts": lambda f: f.attempts,
    "next_attempt_at": lambda f: _seconds(f.next_attempt_at),
    "deliver_at": lambda f: _seconds(f.deliver_at),
    "sequence": lambda f: f.sequence,
    "order_timestamp": lambda f: _millis(f.order_timestamp),
    "picked_up_at": lambda f: _seconds(f.picked_up_at),
    "updated_at": lambda f: _seconds(f.updated_at),
    "destination": lambda f: _destination_json(f.destination),
    "trace_context": lambda f: f.trace_context,
    "call_started_at": lambda f: _seconds(f.call_started_at),
    "cancel_requested_at": lambda f: _seconds(f.cancel_requested_at),
    "cancel_refused": lambda f: f.cancel_refused,
}


def _fulfillment(row: RowMapping) -> Fulfillment:
    return Fulfillment(
        order_id=uuid.UUID(row["order_id"]),
        status=Status(row["status"]),
        attempts=row["attempts"],
        sequence=row["sequence"],
        picked_up_at=datetime.fromtimestamp(row["picked_up_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
        next_attempt_at=_from_seconds(row["next_attempt_at"]),
        order_timestamp=_from_millis(row["order_timestamp"]),
        tracking_number=row["tracking_number"],
        carrier=row["carrier"],
        estimated_delivery=_from_millis(row["estimated_delivery"]),
        failure_reason=row["failure_reason"],
        deliver_at=_from_seconds(row["deliver_at"]),
        destination=_destination(row["destination"]),
        trace_context=row["trace_context"],
        call_started_at=_from_seconds(row["call_started_at"]),
        cancel_requested_at=_from_seconds(row["cancel_requested_at"]),
        cancel_refused=row["cancel_refused"],
    )


def _destination_json(destination: Destination | None) -> str | None:
    if destination is None:
        return None
    return json.dumps(address_document(destination), separators=(",", ":"), ensure_ascii=False)


def _destination(destination_json: str | None) -> Destination | None:
    if destination_json is None:
        return None
    return address_from_document(json.loads(destination_json))


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _millis(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // timedelta(milliseconds=1)


def _from_seconds(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


def _from_millis(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)
