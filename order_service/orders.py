"""Use cases of the Order Service: place an order, read it, follow fulfillment."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from contract_models.events import OrderCreated
from contract_models.events import OrderItem as EventItem
from contract_models.order_api import CreateOrderRequest
from httpapi.json_body import dumps
from httpapi.problems import ProblemError
from messaging.outbox import outbox_row
from order_service import store
from order_service.domain import OrderStatus, order_total
from persistence.engine import write_transaction
from persistence.group_commit import GroupCommitter


def _now_us() -> int:
    return time.time_ns() // 1000


def _iso(epoch_us: int | None) -> str | None:
    if epoch_us is None:
        return None
    return datetime.fromtimestamp(epoch_us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def normalize(request: CreateOrderRequest) -> dict[str, Any]:
    """The order as stored: texts trimmed, prices as Decimal."""
    return {
        "customerId": request.customerId.root.strip(),
        "customerName": request.customerName.root.strip(),
        "items": [
            {
                "productId": item.productId.root.strip(),
                "productName": item.productName.root.strip(),
                "quantity": item.quantity,
                "price": Decimal(item.price),
            }
            for item in request.items
        ],
        "totalAmount": request.totalAmount,
    }


def request_fingerprint(normalized: dict[str, Any]) -> str:
    """Same body, same fingerprint: what an Idempotency-Key is bound to."""
    return hashlib.sha256(dumps(normalized)).hexdigest()


class OrderService:
    def __init__(
        self,
        engine: Engine,
        topic: str,
        idempotency_ttl_seconds: int,
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._writer = GroupCommitter(engine, "order-writer")
        self._topic = topic
        self._idempotency_ttl = idempotency_ttl_seconds
        self._on_committed = on_committed or (lambda: None)

    async def stop(self) -> None:
        await self._writer.stop()

    async def place(self, request: CreateOrderRequest, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """Store the order and its OrderCreated event in one transaction (shared with concurrent requests:
        group commit), then return it. Nothing here waits for Kafka or the registry.

        Returns the order and whether it is the replay of an earlier request with the same key.
        """
        normalized = normalize(request)
        total = order_total([(i["quantity"], i["price"]) for i in normalized["items"]])
        sent_total = normalized["totalAmount"]
        if sent_total is not None and Decimal(sent_total) != total:
            raise ProblemError(
                422,
                "Invalid request",
                "totalAmount does not match the items.",
                [{"field": "totalAmount", "message": f"expected {total}, the sum of quantity * price"}],
            )
        fingerprint = request_fingerprint(normalized) if idempotency_key else ""
        if idempotency_key:
            replay = await run_in_threadpool(self._replay, idempotency_key, fingerprint)
            if replay is not None:
                return replay, True
        order_id = str(uuid.uuid4())
        now = _now_us()
        row = {
            "order_id": order_id,
            "customer_id": normalized["customerId"],
            "customer_name": normalized["customerName"],
            "items": store.items_json(normalized["items"]),
            "total_amount": str(total),
            "status": OrderStatus.Pending.value,
            "created_at": now,
            "updated_at": now,
            "tracking_number": None,
            "carrier": None,
            "estimated_delivery": None,
            "failure_reason": None,
            "fulfillment_seq": -1,
        }
        event = OrderCreated(
            eventId=uuid.uuid4(),
            timestamp=datetime.fromtimestamp(now / 1_000_000, UTC),
            orderId=uuid.UUID(order_id),
            customerId=row["customer_id"],
            customerName=row["customer_name"],
            items=[EventItem(**item) for item in normalized["items"]],
            totalAmount=total,
        )
        outbox_entry = outbox_row(self._topic, order_id, event)

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

    def _replay(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            found = store.find_idempotency_key(conn, key)
            if found is None or found["created_at"] < time.time() - self._idempotency_ttl:
                return None
            if found["request_hash"] != fingerprint:
                raise ProblemError(
                    422,
                    "Idempotency-Key reused",
                    "This Idempotency-Key was used with a different body.",
                    [{"field": "Idempotency-Key", "message": "already used with a different request body"}],
                )
            order = store.get_order(conn, found["order_id"])
        return to_api(order) if order else None

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = store.get_order(conn, order_id)
        return to_api(row) if row else None

    def list(self, customer_id: str | None, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        try:
            with self._engine.connect() as conn:
                rows, next_cursor = store.list_orders(conn, customer_id, status, limit, cursor)
        except ValueError as exc:
            raise ProblemError(
                422,
                "Invalid request",
                "cursor is not one this service handed out.",
                [{"field": "cursor", "message": "invalid cursor"}],
            ) from exc
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
