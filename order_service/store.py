"""Durable order state (SQLAlchemy Core): the orders and idempotency_keys tables, the outbox, and every query
on them.

Rows cross this boundary as domain `Order`s, `FulfillmentView`s and `IdempotencyRecord`s, whose times are
UTC datetimes and whose money is `Decimal`. The columns keep their units: epoch microseconds (integer) for
an order's created_at and updated_at, epoch milliseconds (integer) for estimated_delivery, epoch seconds
(float) for an idempotency key's created_at, decimal strings for money, JSON text (the contract's camelCase
ShippingAddress; NULL for an order without one) for the shipping address; they are converted here and nowhere
else. The page cursor is the keyset position in those units: created_at in µs and the order id.

Every function runs on the caller's Connection, inside the caller's transaction; SQLAlchemy's errors propagate.
The module is larger than most (about 400 lines) for that reason: it is the one place that knows the columns
and their units, so every query on the Order Service's tables lives here.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
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
    RowMapping,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from contracts.order_rules import Address, OrderLine, address_document, address_from_document
from messaging.dead_letter_spool import dead_letter_spool_table
from order_service.domain import TERMINAL, CancellationRequest, FulfillmentView, Order, OrderPage, OrderStatus
from order_service.errors import InvalidCursor
from order_service.idempotency import IdempotencyRecord
from outbox.table import outbox_table
from persistence.statements import InsertIfAbsent

# A page of orders stops once its stored items and names hold this many characters (about 1 MiB of JSON).
PAGE_BUDGET_CHARACTERS = 1_000_000
_PAGE_READ_BATCH = 16

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
    Column("republish_count", Integer, nullable=False, server_default="0"),  # OrderCreated published again
    Column("republish_due_at", BigInteger),  # epoch microseconds, UTC: not published again before
    Column("shipping_address", Text),  # JSON (camelCase ShippingAddress); NULL: placed without one
    Column("cancel_requested_at", BigInteger),  # epoch microseconds, UTC: a client asked to cancel (NULL: never)
    Column("cancel_reason", Text),  # the client's reason
    Column("cancel_refused", Text),  # why the Fulfillment Service refused the cancellation
    Index("ix_orders_created", "created_at", "order_id"),
    Index("ix_orders_customer_created", "customer_id", "created_at", "order_id"),
    Index("ix_orders_status_created", "status", "created_at", "order_id"),
    Index("ix_orders_status_updated", "status", "updated_at"),
    # Few rows have a cancellation: the stale-order query finds those still undecided through this index.
    Index("ix_orders_cancel_requested", "cancel_requested_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False, index=True),  # epoch seconds, UTC
)

outbox = outbox_table(metadata)
dead_letter_spool = dead_letter_spool_table(metadata)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MILLISECOND = timedelta(milliseconds=1)
_FULFILLMENT_COLUMNS = (
    orders.c.order_id,
    orders.c.status,
    orders.c.fulfillment_seq,
    orders.c.tracking_number,
    orders.c.carrier,
    orders.c.estimated_delivery,
    orders.c.failure_reason,
    orders.c.cancel_refused,
)


# The statements of the per-order paths, built once: each call binds its values (persistence.statements says
# why). The b_ names keep their parameters apart from the column names an INSERT's or UPDATE's parameters set.
_INSERT_ORDER = insert(orders)
_GET_ORDER = select(orders).where(orders.c.order_id == bindparam("b_order_id"))
_ORDERS_BY_ID = orders.c.order_id.in_(bindparam("b_order_ids", expanding=True))
_GET_ORDERS = select(orders).where(_ORDERS_BY_ID)
_FULFILLMENT_VIEWS = select(*_FULFILLMENT_COLUMNS).where(_ORDERS_BY_ID)
_INSERT_KEY = InsertIfAbsent(idempotency_keys, idempotency_keys.c.key)
_FIND_KEY = select(idempotency_keys).where(idempotency_keys.c.key == bindparam("b_key"))


def insert_order(conn: Connection, order: Order) -> None:
    """Insert a new order. Raises sqlalchemy's IntegrityError when its id is taken."""
    conn.execute(_INSERT_ORDER, _order_columns(order))


def get_order(conn: Connection, order_id: uuid.UUID) -> Order | None:
    """The order, or None when there is none with order_id."""
    found = conn.execute(_GET_ORDER, {"b_order_id": str(order_id)}).mappings().first()
    return _order(found) if found else None


def get_orders(conn: Connection, order_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Order]:
    """The orders of order_ids that exist, by order id (one SELECT ... IN, its list expanded per call)."""
    found = conn.execute(_GET_ORDERS, {"b_order_ids": sorted(str(i) for i in order_ids)})
    return {order.order_id: order for order in map(_order, found.mappings())}


def fulfillment_views(conn: Connection, order_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, FulfillmentView]:
    """What each of the orders knows of its fulfillment, by order id; orders that do not exist are left out."""
    rows = conn.execute(_FULFILLMENT_VIEWS, {"b_order_ids": sorted(str(i) for i in order_ids)}).mappings()
    return {uuid.UUID(row["order_id"]): _fulfillment_view(row) for row in rows}


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
        cancel_refused=bindparam("b_refused"),
        updated_at=bindparam("b_now"),
    )
)


def save_fulfillment_views(conn: Connection, views: dict[uuid.UUID, FulfillmentView], now: datetime) -> None:
    """Write each order's fulfillment view, updated at now: one prepared UPDATE for them all (executemany)."""
    if not views:
        return
    updated_at = _micros(now)
    conn.execute(
        _SAVE_VIEW,
        [
            {
                "b_order_id": str(order_id),
                "b_status": view.status.value,
                "b_seq": view.sequence,
                "b_tracking": view.tracking_number,
                "b_carrier": view.carrier,
                "b_eta": _millis(view.estimated_delivery),
                "b_reason": view.failure_reason,
                "b_refused": view.cancellation_refused,
                "b_now": updated_at,
            }
            for order_id, view in views.items()
        ],
    )


def record_cancellation(conn: Connection, order: Order) -> bool:
    """Record order's cancellation request (and its updated_at) unless the row has one already or reached a
    final status (domain.TERMINAL) meanwhile; False when nothing was written. Raises ValueError for an order
    without a cancellation."""
    request = order.cancellation
    if request is None:
        raise ValueError(f"order {order.order_id} has no cancellation to record")
    result = conn.execute(
        _RECORD_CANCELLATION,
        {
            "b_order_id": str(order.order_id),
            "b_requested_at": _micros(request.requested_at),
            "b_reason": request.reason,
            "b_updated_at": _micros(order.updated_at),
        },
    )
    return result.rowcount == 1


_RECORD_CANCELLATION = (
    update(orders)
    .where(
        orders.c.order_id == bindparam("b_order_id"),
        orders.c.cancel_requested_at.is_(None),
        orders.c.status.not_in(sorted(status.value for status in TERMINAL)),
    )
    .values(
        cancel_requested_at=bindparam("b_requested_at"),
        cancel_reason=bindparam("b_reason"),
        updated_at=bindparam("b_updated_at"),
    )
)


_UNFINISHED = (OrderStatus.Pending.value, OrderStatus.Processing.value)
# Orders the Fulfillment Service still owes an answer: unfinished ones, and any whose cancellation is undecided
# (requested, neither Cancelled nor refused: a Fulfilled or Failed order whose OrderCancelled was lost or
# dead-lettered would otherwise show "Requested" for ever).
_AWAITING_FULFILLMENT = or_(
    orders.c.status.in_(_UNFINISHED),
    and_(
        orders.c.cancel_requested_at.is_not(None),
        orders.c.status != OrderStatus.Cancelled.value,
        orders.c.cancel_refused.is_(None),
    ),
)


def stale_orders(conn: Connection, changed_before: datetime, now: datetime, limit: int) -> list[Order]:
    """Up to limit orders awaiting the Fulfillment Service (unfinished: Pending or Processing; or with a
    cancellation it has not decided) last changed before changed_before whose next republication is due at now,
    least recently changed first; those whose events still wait in the outbox are left out (publishing them
    again would heal nothing)."""
    query = (
        select(orders)
        .where(
            _AWAITING_FULFILLMENT,
            orders.c.updated_at < _micros(changed_before),
            or_(orders.c.republish_due_at.is_(None), orders.c.republish_due_at <= _micros(now)),
        )
        .order_by(orders.c.updated_at)
        .limit(limit)
    )
    rows = conn.execute(query).mappings().all()
    if not rows:
        return []
    ids = [row["order_id"] for row in rows]
    in_outbox = set(conn.execute(select(outbox.c.key).where(outbox.c.key.in_(ids))).scalars())
    return [_order(row) for row in rows if row["order_id"] not in in_outbox]


def schedule_next_republish(
    conn: Connection, order_ids: Collection[uuid.UUID], now: datetime, first_interval: timedelta, cap: timedelta
) -> None:
    """Count one more republication of each order and make the next due after an interval that doubles with
    each (first_interval, then twice that, ...), at most cap."""
    query = select(orders.c.order_id, orders.c.republish_count).where(
        orders.c.order_id.in_([str(i) for i in order_ids])
    )
    schedule = [
        {
            "b_order_id": order_id,
            "b_count": count + 1,
            "b_due": _micros(now + min(first_interval * 2 ** min(count, 20), cap)),
        }
        for order_id, count in conn.execute(query).all()
    ]
    if schedule:  # one prepared UPDATE for them all (executemany)
        conn.execute(_SCHEDULE_REPUBLISH, schedule)


_SCHEDULE_REPUBLISH = (
    update(orders)
    .where(orders.c.order_id == bindparam("b_order_id"))
    .values(republish_count=bindparam("b_count"), republish_due_at=bindparam("b_due"))
)


def stale_summary(conn: Connection, changed_before: datetime) -> tuple[int, datetime | None]:
    """How many orders awaiting the Fulfillment Service (see stale_orders) were last changed before changed_before,
    and the oldest such change."""
    count, oldest = conn.execute(
        select(func.count(), func.min(orders.c.updated_at)).where(
            _AWAITING_FULFILLMENT, orders.c.updated_at < _micros(changed_before)
        )
    ).one()
    return count, None if oldest is None else _EPOCH + oldest * _MICROSECOND


def find_idempotency_key(conn: Connection, key: str) -> IdempotencyRecord | None:
    """The record of key, expired or not, or None when the key was never used (or was purged)."""
    found = conn.execute(_FIND_KEY, {"b_key": key}).mappings().first()
    if found is None:
        return None
    return IdempotencyRecord(
        key=found["key"],
        request_hash=found["request_hash"],
        order_id=uuid.UUID(found["order_id"]),
        created_at=datetime.fromtimestamp(found["created_at"], UTC),
    )


def insert_idempotency_key(conn: Connection, record: IdempotencyRecord) -> bool:
    """Insert record unless its key is in use (expired keys too, until purged); True when it was written, False when
    the key is in use (nothing written, the transaction stays usable: INSERT ... ON CONFLICT DO NOTHING)."""
    result = conn.execute(
        _INSERT_KEY.on(conn),
        {
            "key": record.key,
            "request_hash": record.request_hash,
            "order_id": str(record.order_id),
            "created_at": record.created_at.timestamp(),
        },
    )
    return result.rowcount == 1


def purge_idempotency_keys(conn: Connection, older_than: datetime) -> int:
    """Delete the keys created before older_than; returns how many."""
    return conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < older_than.timestamp())).rowcount


def encode_cursor(created_at_us: int, order_id: str) -> str:
    """The cursor of the page after the order created at created_at_us (epoch µs) with order_id:
    unpadded URL-safe base64 of "<created_at_us>:<order_id>"."""
    return base64.urlsafe_b64encode(f"{created_at_us}:{order_id}".encode()).decode().rstrip("=")


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
    conn: Connection,
    customer_id: str | None,
    status: OrderStatus | None,
    limit: int,
    after: tuple[int, str] | None,
) -> OrderPage:
    """Up to limit orders, newest first, of customer_id and in status when given, after the keyset position
    after (decode_cursor's (created_at µs, order id)) when given. Keyset pagination on (created_at, order_id)
    keeps pages stable under inserts; the page's cursor names the position of its last order.

    A page ends early, with a cursor, once its orders' stored items and names reach PAGE_BUDGET_CHARACTERS
    (it always holds at least one order), so a page of the largest orders costs about as much to read and
    send as one large order, not a hundred. Rows are read one batch at a time and the rest left unread.
    """
    query = select(orders)
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    if status is not None:
        query = query.where(orders.c.status == status.value)
    if after is not None:
        created_at, order_id = after
        query = query.where(
            or_(
                orders.c.created_at < created_at,
                and_(orders.c.created_at == created_at, orders.c.order_id < order_id),
            )
        )
    query = query.order_by(orders.c.created_at.desc(), orders.c.order_id.desc()).limit(limit + 1)
    rows: list[RowMapping] = []
    characters = 0
    more = False
    with conn.execution_options(yield_per=_PAGE_READ_BATCH).execute(query) as result:
        for row in result.mappings():
            characters += len(row["items"]) + len(row["customer_name"]) + len(row["customer_id"])
            characters += len(row["shipping_address"] or "")
            if len(rows) == limit or (rows and characters > PAGE_BUDGET_CHARACTERS):
                more = True
                break
            rows.append(row)
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["order_id"]) if more else None
    return OrderPage([_order(row) for row in rows], next_cursor)


def _order_columns(order: Order) -> dict[str, Any]:
    view = order.fulfillment
    return {
        "order_id": str(order.order_id),
        "customer_id": order.customer_id,
        "customer_name": order.customer_name,
        "items": _items_json(order.lines),
        "total_amount": str(order.total),
        "status": view.status.value,
        "created_at": _micros(order.created_at),
        "updated_at": _micros(order.updated_at),
        "tracking_number": view.tracking_number,
        "carrier": view.carrier,
        "estimated_delivery": _millis(view.estimated_delivery),
        "failure_reason": view.failure_reason,
        "fulfillment_seq": view.sequence,
        "shipping_address": _address_json(order.shipping_address),
        "cancel_requested_at": None if order.cancellation is None else _micros(order.cancellation.requested_at),
        "cancel_reason": None if order.cancellation is None else order.cancellation.reason,
        "cancel_refused": view.cancellation_refused,
    }


def _order(row: RowMapping) -> Order:
    return Order(
        order_id=uuid.UUID(row["order_id"]),
        customer_id=row["customer_id"],
        customer_name=row["customer_name"],
        lines=_lines(row["items"]),
        total=Decimal(row["total_amount"]),
        created_at=_EPOCH + row["created_at"] * _MICROSECOND,
        updated_at=_EPOCH + row["updated_at"] * _MICROSECOND,
        fulfillment=_fulfillment_view(row),
        shipping_address=_address(row["shipping_address"]),
        cancellation=_cancellation(row),
    )


def _cancellation(row: RowMapping) -> CancellationRequest | None:
    requested = row["cancel_requested_at"]
    if requested is None:
        return None
    return CancellationRequest(_EPOCH + requested * _MICROSECOND, row["cancel_reason"])


def _fulfillment_view(row: RowMapping) -> FulfillmentView:
    estimated = row["estimated_delivery"]
    return FulfillmentView(
        status=OrderStatus(row["status"]),
        sequence=row["fulfillment_seq"],
        tracking_number=row["tracking_number"],
        carrier=row["carrier"],
        estimated_delivery=None if estimated is None else _EPOCH + estimated * _MILLISECOND,
        failure_reason=row["failure_reason"],
        cancellation_refused=row["cancel_refused"],
    )


def _items_json(lines: tuple[OrderLine, ...]) -> str:
    items = [
        {
            "productId": line.product_id,
            "productName": line.product_name,
            "quantity": line.quantity,
            "price": str(line.price),
        }
        for line in lines
    ]
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


def _lines(items_json: str) -> tuple[OrderLine, ...]:
    return tuple(
        OrderLine(item["productId"], item["productName"], item["quantity"], Decimal(item["price"]))
        for item in json.loads(items_json)
    )


def _address_json(address: Address | None) -> str | None:
    if address is None:
        return None
    return json.dumps(address_document(address), separators=(",", ":"), ensure_ascii=False)


def _address(address_json: str | None) -> Address | None:
    if address_json is None:
        return None
    return address_from_document(json.loads(address_json))


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _millis(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // _MILLISECOND
