"""Durable order state: tables and the queries the service runs (SQLAlchemy Core)."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
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
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from order_service.domain import FulfillmentView, OrderStatus
from order_service.errors import InvalidCursor
from outbox.table import outbox_table

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("customer_name", String(200), nullable=False),
    Column("items", Text, nullable=False),  # JSON; prices as decimal strings
    Column("total_amount", String(32), nullable=False),  # decimal string: exact on every database
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch microseconds, UTC
    Column("updated_at", BigInteger, nullable=False),
    Column("tracking_number", String(200)),
    Column("carrier", String(200)),
    Column("estimated_delivery", BigInteger),  # epoch milliseconds, UTC
    Column("failure_reason", Text),
    Column("fulfillment_seq", Integer, nullable=False, default=-1),
    Index("ix_orders_created", "created_at", "order_id"),
    Index("ix_orders_customer_created", "customer_id", "created_at", "order_id"),
    Index("ix_orders_status_created", "status", "created_at", "order_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False, index=True),
)

outbox = outbox_table(metadata)


def insert_order(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(orders), [row])


def get_order(conn: Connection, order_id: str) -> dict[str, Any] | None:
    found = conn.execute(select(orders).where(orders.c.order_id == order_id)).mappings().first()
    return dict(found) if found else None


def get_orders(conn: Connection, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(orders).where(orders.c.order_id.in_(order_ids))).mappings().all()
    return {row["order_id"]: dict(row) for row in rows}


def find_idempotency_key(conn: Connection, key: str) -> dict[str, Any] | None:
    found = conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == key)).mappings().first()
    return dict(found) if found else None


def insert_idempotency_key(conn: Connection, key: str, request_hash: str, order_id: str, now: float) -> None:
    conn.execute(
        insert(idempotency_keys),
        [{"key": key, "request_hash": request_hash, "order_id": order_id, "created_at": now}],
    )


def purge_idempotency_keys(conn: Connection, older_than: float) -> int:
    return conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < older_than)).rowcount


def encode_cursor(created_at: int, order_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{order_id}".encode()).decode().rstrip("=")


_CURSOR = re.compile(r"(0|[1-9][0-9]{0,18}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(created_at in epoch µs, order id) from a cursor encode_cursor made.

    Exactly that spelling, checked before conversion: a timestamp of at most 19 digits that fits a signed
    64-bit column (SQLite's and PostgreSQL's BIGINT) and a canonical lower-case UUID. Raises InvalidCursor.
    """
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidCursor(cursor) from exc
    match = _CURSOR.fullmatch(decoded)
    if match is None or int(match[1]) > 2**63 - 1:
        raise InvalidCursor(cursor)
    return int(match[1]), match[2]


def list_orders(
    conn: Connection, customer_id: str | None, status: str | None, limit: int, cursor: tuple[int, str] | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, after cursor (created_at µs, order id) when given; keyset pagination on
    (created_at, order_id) so pages stay stable under inserts. Returns the rows and the next page's cursor."""
    query = select(orders)
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    if status is not None:
        query = query.where(orders.c.status == status)
    if cursor is not None:
        created_at, order_id = cursor
        query = query.where(
            or_(
                orders.c.created_at < created_at,
                and_(orders.c.created_at == created_at, orders.c.order_id < order_id),
            )
        )
    query = query.order_by(orders.c.created_at.desc(), orders.c.order_id.desc()).limit(limit + 1)
    rows = [dict(r) for r in conn.execute(query).mappings().all()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["order_id"])
    return rows, next_cursor


def fulfillment_view(row: dict[str, Any]) -> FulfillmentView:
    return FulfillmentView(
        status=OrderStatus(row["status"]),
        sequence=row["fulfillment_seq"],
        tracking_number=row["tracking_number"],
        carrier=row["carrier"],
        estimated_delivery_ms=row["estimated_delivery"],
        failure_reason=row["failure_reason"],
    )


_SAVE_VIEW = (
    update(orders)
    .where(orders.c.order_id == bindparam("b_order_id"))
    .values(
        status=bindparam("b_status"),
        fulfillment_seq=bindparam("b_seq"),
        tracking_number=bindparam("b_tracking"),
        carrier=bindparam("b_carrier"),
        estimated_delivery=bindparam("b_eta"),
        failure_reason=bindparam("b_reason"),
        updated_at=bindparam("b_now"),
    )
)


def save_fulfillment_views(conn: Connection, views: dict[str, FulfillmentView], now_us: int) -> None:
    """One prepared UPDATE for the whole batch (executemany)."""
    if not views:
        return
    conn.execute(
        _SAVE_VIEW,
        [
            {
                "b_order_id": order_id,
                "b_status": view.status.value,
                "b_seq": view.sequence,
                "b_tracking": view.tracking_number,
                "b_carrier": view.carrier,
                "b_eta": view.estimated_delivery_ms,
                "b_reason": view.failure_reason,
                "b_now": now_us,
            }
            for order_id, view in views.items()
        ],
    )


def items_json(items: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{**item, "price": str(item["price"])} for item in items], separators=(",", ":"), ensure_ascii=False
    )


def items_from_json(text: str) -> list[dict[str, Any]]:
    return [{**item, "price": Decimal(item["price"])} for item in json.loads(text)]
