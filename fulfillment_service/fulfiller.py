"""The fulfillment of one order: pick it up, ship it through the provider exactly once, report progress.

Every state change and the event that reports it are written in one transaction (outbox). The
provider is called with the order id as idempotency key, so a redelivered or retried order that the
provider already shipped gets its existing shipment back, never a second one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, update

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged, OrderCreated
from fulfillment_service import store
from fulfillment_service.domain import Shipment
from fulfillment_service.resilience import BackoffPolicy, CircuitBreaker
from fulfillment_service.shipping import ProviderError, ShippingProvider
from messaging.outbox import add_to_outbox, outbox_row
from persistence.group_commit import GroupCommitter

log = logging.getLogger(__name__)

SEQ_PICKED_UP, SEQ_OUTCOME, SEQ_DELIVERED = 0, 1, 2


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


class Fulfiller:
    def __init__(
        self,
        db: GroupCommitter,
        provider: ShippingProvider,
        breaker: CircuitBreaker,
        backoff: BackoffPolicy,
        topic: str,
        provider_timeout: float,
        delivery_after: float,
        on_outbox_write: Callable[[], None],
    ) -> None:
        self._db = db
        self._provider = provider
        self._breaker = breaker
        self._backoff = backoff
        self._topic = topic
        self._timeout = provider_timeout
        self._delivery_after = delivery_after
        self._on_outbox_write = on_outbox_write
        self._active: set[str] = set()
        self.shipped = 0
        self.failed = 0

    @property
    def active(self) -> set[str]:
        return self._active

    def _lease(self) -> float:
        # A crash mid-call leaves the order Pending and due after this, for the retry scheduler.
        return time.time() + self._timeout + 20

    # -- entry points -------------------------------------------------------------------------------

    async def handle_order_created(self, event: OrderCreated) -> None:
        """Pick the order up (durably) and make its first provider attempt."""
        order_id = str(event.orderId)
        row = await self._db.submit(lambda conn: self._pick_up(conn, event))
        self._on_outbox_write()
        if row["status"] in store.TERMINAL or order_id in self._active:
            return  # redelivery of a finished order, or already being worked on here
        await self.attempt(row, first=not row.get("seen_before", False))

    async def attempt(self, row: dict[str, Any], first: bool = False) -> None:
        """One provider call for a Pending order, then its outcome recorded: Shipped, Failed, or a retry.

        Unless this is the order's very first attempt, ask the provider first whether it already shipped
        the order (a call that succeeded just before a crash): then record that shipment, call nothing.
        """
        order_id = row["order_id"]
        if order_id in self._active:
            return
        self._active.add(order_id)
        try:
            if not first:
                shipped = await self._provider.find_shipment(order_id)
                if shipped is not None:
                    attempts = max(row["attempts"], 1)
                    await self._db.submit(lambda c: self._record_shipped(c, order_id, attempts, shipped))
                    self._on_outbox_write()
                    return
            if not self._breaker.allow():
                # Breaker open: the order waits (it is picked up, not failed) until the provider may work.
                wait_until = time.time() + self._breaker.retry_after().total_seconds()
                await self._db.submit(lambda c: store.update_if_pending(c, order_id, {"next_attempt_at": wait_until}))
                return
            attempts = row["attempts"] + 1
            try:
                shipment = await asyncio.wait_for(self._provider.create_shipment(order_id), self._timeout)
            except (ProviderError, TimeoutError) as exc:
                self._breaker.record_failure()
                reason = str(exc) or f"shipping provider did not answer within {self._timeout:g} s"
                await self._after_failure(row, attempts, reason)
                return
            self._breaker.record_success()
            await self._db.submit(lambda c: self._record_shipped(c, order_id, attempts, shipment))
            self._on_outbox_write()
        finally:
            self._active.discard(order_id)

    async def deliver(self, row: dict[str, Any]) -> None:
        await self._db.submit(lambda c: self._record_delivered(c, row))
        self._on_outbox_write()

    # -- transactions -------------------------------------------------------------------------------

    async def _after_failure(self, row: dict[str, Any], attempts: int, reason: str) -> None:
        order_id = row["order_id"]
        if self._backoff.gives_up(attempts, timedelta(seconds=time.time() - row["picked_up_at"])):
            await self._db.submit(lambda c: self._record_failed(c, order_id, attempts, reason))
            self._on_outbox_write()
            return
        due = time.time() + self._backoff.delay(attempts).total_seconds()
        values = {"attempts": attempts, "next_attempt_at": due, "failure_reason": reason, "updated_at": time.time()}
        await self._db.submit(lambda c: store.update_if_pending(c, order_id, values))

    def _pick_up(self, conn: Connection, event: OrderCreated) -> dict[str, Any]:
        order_id = str(event.orderId)
        existing = store.get(conn, order_id)
        if existing is not None:
            return {**existing, "seen_before": True}
        now = time.time()
        row = {
            "order_id": order_id,
            "status": "Pending",
            "attempts": 0,
            "next_attempt_at": self._lease(),
            "sequence": SEQ_PICKED_UP,
            "order_timestamp": int(event.timestamp.timestamp() * 1000),
            "picked_up_at": now,
            "updated_at": now,
        }
        store.insert_pending(conn, row)
        self._publish(conn, order_id, FulfillmentStatus.Pending, SEQ_PICKED_UP, now, attempts=0)
        return {
            **row,
            "tracking_number": None,
            "carrier": None,
            "estimated_delivery": None,
            "failure_reason": None,
            "deliver_at": None,
        }

    def _record_shipped(self, conn: Connection, order_id: str, attempts: int, shipment: Shipment) -> None:
        now = time.time()
        estimated_ms = int(shipment.estimated_delivery.timestamp() * 1000)
        changed = store.update_if_pending(
            conn,
            order_id,
            {
                "status": "Shipped",
                "tracking_number": shipment.tracking_number,
                "carrier": shipment.carrier,
                "estimated_delivery": estimated_ms,
                "attempts": attempts,
                "next_attempt_at": None,
                "failure_reason": None,
                "sequence": SEQ_OUTCOME,
                "deliver_at": now + self._delivery_after if self._delivery_after > 0 else None,
                "updated_at": now,
            },
        )
        if changed:  # another worker may have recorded the same shipment first; report it once
            self.shipped += 1
            self._publish(
                conn,
                order_id,
                FulfillmentStatus.Shipped,
                SEQ_OUTCOME,
                now,
                attempts=attempts,
                tracking=shipment.tracking_number,
                carrier=shipment.carrier,
                estimated=shipment.estimated_delivery.timestamp(),
            )

    def _record_failed(self, conn: Connection, order_id: str, attempts: int, reason: str) -> None:
        now = time.time()
        reason = f"gave up after {attempts} attempt(s): {reason}"
        changed = store.update_if_pending(
            conn,
            order_id,
            {
                "status": "Failed",
                "attempts": attempts,
                "next_attempt_at": None,
                "failure_reason": reason,
                "sequence": SEQ_OUTCOME,
                "updated_at": now,
            },
        )
        if changed:
            self.failed += 1
            self._publish(conn, order_id, FulfillmentStatus.Failed, SEQ_OUTCOME, now, attempts=attempts, reason=reason)

    def _record_delivered(self, conn: Connection, row: dict[str, Any]) -> None:
        now = time.time()
        result = conn.execute(
            update(store.fulfillments)
            .where((store.fulfillments.c.order_id == row["order_id"]) & (store.fulfillments.c.status == "Shipped"))
            .values(status="Delivered", sequence=SEQ_DELIVERED, deliver_at=None, updated_at=now)
        )
        if result.rowcount == 1:
            estimated = row["estimated_delivery"] / 1000 if row["estimated_delivery"] else None
            self._publish(
                conn,
                row["order_id"],
                FulfillmentStatus.Delivered,
                SEQ_DELIVERED,
                now,
                attempts=row["attempts"],
                tracking=row["tracking_number"],
                carrier=row["carrier"],
                estimated=estimated,
            )

    def _publish(
        self,
        conn: Connection,
        order_id: str,
        status: FulfillmentStatus,
        sequence: int,
        now: float,
        *,
        attempts: int,
        tracking: str | None = None,
        carrier: str | None = None,
        estimated: float | None = None,
        reason: str | None = None,
    ) -> None:
        event = FulfillmentStatusChanged(
            eventId=uuid.uuid4(),
            orderId=uuid.UUID(order_id),
            status=status,
            sequence=sequence,
            trackingNumber=tracking,
            carrier=carrier,
            estimatedDelivery=_dt(estimated) if estimated else None,
            reason=reason,
            attempts=attempts,
            timestamp=_dt(now),
        )
        add_to_outbox(conn, store.outbox, [outbox_row(self._topic, order_id, event)])
