"""Use cases of the Order Service: place an order, read it, follow fulfillment."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from contract_models.events import ORDER_CREATED_SCHEMA, OrderCreated
from contract_models.events import OrderItem as EventItem
from contracts.order_rules import ValidOrder
from messaging.avro_codec import WIRE_HEADER_BYTES, AvroBodyWriter
from order_service import store
from order_service.domain import OrderStatus
from order_service.errors import EventTooLarge, IdempotencyKeyReused
from outbox.table import outbox_row
from persistence.engine import write_transaction
from persistence.group_commit import GroupCommitter


def _now_us() -> int:
    return time.time_ns() // 1000


def _iso(epoch_us: int | None) -> str | None:
    if epoch_us is None:
        return None
    return datetime.fromtimestamp(epoch_us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def request_fingerprint(order: ValidOrder) -> str:
    """What an Idempotency-Key is bound to: the order's values, not their spelling (10.00 and 10, a trimmed
    and an untrimmed name, a totalAmount sent or left out all describe the same order). Hex SHA-256."""
    canonical = [
        order.customer_id,
        order.customer_name,
        [[line.product_id, line.product_name, line.quantity, str(line.price)] for line in order.lines],
    ]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


def order_created(order_id: str, accepted_at_us: int, order: ValidOrder) -> OrderCreated:
    """The OrderCreated event announcing order (accepted at epoch µs accepted_at_us) under order_id."""
    return OrderCreated(
        eventId=uuid.uuid4(),
        timestamp=datetime.fromtimestamp(accepted_at_us / 1_000_000, UTC),
        orderId=uuid.UUID(order_id),
        customerId=order.customer_id,
        customerName=order.customer_name,
        items=[
            EventItem(
                productId=line.product_id, productName=line.product_name, quantity=line.quantity, price=line.price
            )
            for line in order.lines
        ],
        totalAmount=order.total,
    )


class OrderService:
    def __init__(
        self,
        engine: Engine,
        topic: str,
        idempotency_ttl_seconds: int,
        on_committed: Callable[[], None] | None = None,
        *,
        max_event_bytes: int = 990_000,
    ) -> None:
        self._engine = engine
        self._writer = GroupCommitter(engine, "order-writer")
        self._topic = topic
        self._idempotency_ttl = idempotency_ttl_seconds
        self._on_committed = on_committed or (lambda: None)
        self._encode = AvroBodyWriter(ORDER_CREATED_SCHEMA)
        self._max_event_bytes = max_event_bytes

    async def stop(self) -> None:
        await self._writer.stop()

    async def place(self, order: ValidOrder, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """Store the order and its OrderCreated event in one transaction (shared with concurrent requests:
        group commit), then return it. Nothing here waits for Kafka or the registry.

        Returns the order as the API shows it, and whether it is the replay of an earlier request with the
        same key. Raises IdempotencyKeyReused (the key was used with another order), UnencodableEvent or
        EventTooLarge (the event could never be published, so the order is not accepted).
        """
        fingerprint = request_fingerprint(order) if idempotency_key else ""
        if idempotency_key:
            replay = await run_in_threadpool(self._replay, idempotency_key, fingerprint)
            if replay is not None:
                return replay, True
        order_id = str(uuid.uuid4())
        now = _now_us()
        items = [
            {
                "productId": line.product_id,
                "productName": line.product_name,
                "quantity": line.quantity,
                "price": line.price,
            }
            for line in order.lines
        ]
        row = {
            "order_id": order_id,
            "customer_id": order.customer_id,
            "customer_name": order.customer_name,
            "items": store.items_json(items),
            "total_amount": str(order.total),
            "status": OrderStatus.Pending.value,
            "created_at": now,
            "updated_at": now,
            "tracking_number": None,
            "carrier": None,
            "estimated_delivery": None,
            "failure_reason": None,
            "fulfillment_seq": -1,
        }
        event = order_created(order_id, now, order)
        outbox_entry = outbox_row(self._topic, order_id, event)
        self._check_publishable(event)

        def write(conn: Connection) -> None:
            store.insert_order(conn, row)
            conn.execute(store.outbox.insert(), [outbox_entry])
            if idempotency_key:
                store.insert_idempotency_key(conn, idempotency_key, fingerprint, order_id, time.time())

        try:
            await self._writer.submit(write)
        except IntegrityError:
            # A concurrent request with the same key won the race: answer as its replay.
            if idempotency_key:
                replay = await run_in_threadpool(self._replay, idempotency_key, fingerprint)
                if replay is not None:
                    return replay, True
            raise
        self._on_committed()
        return to_api(row), False

    def _check_publishable(self, event: OrderCreated) -> None:
        """The relay will encode this event (read back from its exact JSON payload: Decimal, UUID and
        datetime survive that unchanged) with the committed schema: it must succeed, and the record must
        fit what the producer sends."""
        body = self._encode(event.model_dump())
        size = WIRE_HEADER_BYTES + len(body)
        if size > self._max_event_bytes:
            raise EventTooLarge(size, self._max_event_bytes)

    def _replay(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            found = store.find_idempotency_key(conn, key)
            if found is None or found["created_at"] < time.time() - self._idempotency_ttl:
                return None
            if found["request_hash"] != fingerprint:
                raise IdempotencyKeyReused(key)
            order = store.get_order(conn, found["order_id"])
        return to_api(order) if order else None

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = store.get_order(conn, order_id)
        return to_api(row) if row else None

    def list(self, customer_id: str | None, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """One page of orders, newest first: {items: [Order], nextCursor}. Raises InvalidCursor."""
        position = store.decode_cursor(cursor) if cursor is not None else None
        with self._engine.connect() as conn:
            rows, next_cursor = store.list_orders(conn, customer_id, status, limit, position)
        return {"items": [to_api(r) for r in rows], "nextCursor": next_cursor}

    def purge_expired_keys(self) -> int:
        with write_transaction(self._engine) as conn:
            return store.purge_idempotency_keys(conn, time.time() - self._idempotency_ttl)


def to_api(row: dict[str, Any]) -> dict[str, Any]:
    """The stored order as the API's Order document."""
    estimated = row["estimated_delivery"]
    return {
        "orderId": row["order_id"],
        "customerId": row["customer_id"],
        "customerName": row["customer_name"],
        "items": store.items_from_json(row["items"]),
        "totalAmount": Decimal(row["total_amount"]),
        "status": row["status"],
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
        "trackingNumber": row["tracking_number"],
        "carrier": row["carrier"],
        "estimatedDelivery": _iso(estimated * 1000) if estimated is not None else None,
        "failureReason": row["failure_reason"],
    }
