"""Use cases of the Order Service: place an order, read it, follow fulfillment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from contract_models.events import ORDER_CREATED_SCHEMA, OrderCreated
from contract_models.events import OrderItem as EventItem
from contracts.order_rules import ValidOrder
from messaging.avro_codec import WIRE_HEADER_BYTES, AvroBodyWriter
from messaging.outbox import outbox_row
from order_service import store
from order_service.domain import Order, OrderStatus, accept
from order_service.errors import EventTooLarge, IdempotencyKeyReused
from order_service.idempotency import IdempotencyRecord, request_fingerprint
from persistence.engine import write_transaction
from persistence.group_commit import GroupCommitter


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def order_created(order: Order) -> OrderCreated:
    """The OrderCreated event announcing order, stamped with its acceptance time."""
    return OrderCreated(
        eventId=uuid.uuid4(),
        timestamp=order.created_at,
        orderId=order.order_id,
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
        self._idempotency_ttl = timedelta(seconds=idempotency_ttl_seconds)
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
        now = datetime.now(UTC)
        accepted = accept(uuid.uuid4(), order, now)
        event = order_created(accepted)
        outbox_entry = outbox_row(self._topic, str(accepted.order_id), event)
        self._check_publishable(event)
        key = IdempotencyRecord(idempotency_key, fingerprint, accepted.order_id, now) if idempotency_key else None

        def write(conn: Connection) -> None:
            store.insert_order(conn, accepted)
            conn.execute(store.outbox.insert(), [outbox_entry])
            if key is not None:
                store.insert_idempotency_key(conn, key)

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
        return to_api(accepted), False

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
            if found is None or found.expired(datetime.now(UTC), self._idempotency_ttl):
                return None
            if found.request_hash != fingerprint:
                raise IdempotencyKeyReused(key)
            order = store.get_order(conn, found.order_id)
        return to_api(order) if order else None

    def get(self, order_id: uuid.UUID) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            order = store.get_order(conn, order_id)
        return to_api(order) if order else None

    def list(
        self, customer_id: str | None, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """One page of orders, newest first: {items: [Order], nextCursor}. Raises InvalidCursor."""
        position = store.decode_cursor(cursor) if cursor is not None else None
        with self._engine.connect() as conn:
            page = store.list_orders(conn, customer_id, status, limit, position)
        return {"items": [to_api(order) for order in page.orders], "nextCursor": page.next_cursor}

    def purge_expired_keys(self) -> int:
        with write_transaction(self._engine) as conn:
            return store.purge_idempotency_keys(conn, datetime.now(UTC) - self._idempotency_ttl)


def to_api(order: Order) -> dict[str, Any]:
    """The order as the API's Order document."""
    fulfillment = order.fulfillment
    return {
        "orderId": str(order.order_id),
        "customerId": order.customer_id,
        "customerName": order.customer_name,
        "items": [
            {
                "productId": line.product_id,
                "productName": line.product_name,
                "quantity": line.quantity,
                "price": line.price,
            }
            for line in order.lines
        ],
        "totalAmount": order.total,
        "status": order.status.value,
        "createdAt": _iso(order.created_at),
        "updatedAt": _iso(order.updated_at),
        "trackingNumber": fulfillment.tracking_number,
        "carrier": fulfillment.carrier,
        "estimatedDelivery": _iso(fulfillment.estimated_delivery),
        "failureReason": fulfillment.failure_reason,
    }
