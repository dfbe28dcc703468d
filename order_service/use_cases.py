"""The order use cases: place an order, read one (or wait for its status), list them, forget old keys.

They orchestrate; the rules are the domain's and the order rules' (contracts/order_rules.py). Each is a
coroutine that returns domain objects and raises the domain exceptions of order_service/errors.py; the
unit of work does the I/O off the event loop. Nothing here waits for Kafka or the registry: an accepted order
and its OrderCreated event are stored in one transaction (outbox) and published later. Errors of the database
(SQLAlchemy's) propagate unchanged; the HTTP edge answers a storage outage with 503 (httpapi/error_boundary.py).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from contracts.order_rules import ValidOrder
from messaging.avro_codec import RegistrationCheck
from observability.logs import order_context
from observability.metrics import Metrics
from order_service.domain import CancellationRequest, Order, OrderPage, OrderStatus, accept
from order_service.errors import EventSchemaRefused, IdempotencyKeyReused, OrderNotCancellable, OrderNotFound
from order_service.idempotency import IdempotencyRecord, request_fingerprint
from order_service.metrics import OrderMetrics
from order_service.publishing import PublishableCheck, order_created
from order_service.status_waiter import StatusWaiter
from order_service.unit_of_work import IdempotencyKeyTaken, OrderUnitOfWork

MAX_EVENT_BYTES = 990_000


log = logging.getLogger(__name__)


class OrderService:
    """The use cases of one service instance.

    Idempotency-Keys replay their order for idempotency_ttl_seconds. An order is accepted only if its
    OrderCreated event encodes and fits max_event_bytes, and while the registry does not refuse its schema:
    schema_refusal() gives the registry's refusal (None while there is none; the relay keeps it current) and
    retry_after_seconds is when a refused client may try again. waiter wakes reads waiting for a status change;
    clock gives the current UTC time. metrics: where orders created and waiting long polls are observed
    (order_service.metrics).
    """

    def __init__(
        self,
        uow: OrderUnitOfWork,
        waiter: StatusWaiter,
        idempotency_ttl_seconds: int,
        *,
        max_event_bytes: int = MAX_EVENT_BYTES,
        schema_refusal: Callable[[], RegistrationCheck | None] = lambda: None,
        retry_after_seconds: int = 30,
        clock: Callable[[], datetime] = functools.partial(datetime.now, UTC),
        metrics: Metrics | None = None,
    ) -> None:
        self._uow = uow
        self._metrics = OrderMetrics(metrics or Metrics())
        self._waiter = waiter
        self._idempotency_ttl = timedelta(seconds=idempotency_ttl_seconds)
        self._publishable = PublishableCheck(max_event_bytes)
        self._schema_refusal = schema_refusal
        self._retry_after = retry_after_seconds
        self._clock = clock

    async def place(self, request: ValidOrder, idempotency_key: str | None) -> tuple[Order, bool]:
        """Accept the order: store it and its OrderCreated event in one transaction, then return it.

        Logs one INFO line "order accepted" (with its orderId) per order stored.
        Returns (order, replayed): replayed is True when an earlier request with the same key placed the same
        order (by value), and then nothing is stored. Raises IdempotencyKeyReused (the key was used with another
        order), EventNotEncodable or EventTooLarge (the event could never be published, so the order is
        not accepted), EventSchemaRefused (the registry refuses the event's schema: nothing is stored, since
        the event could not be published; the replay of an order stored before is still answered).
        """
        fingerprint = request_fingerprint(request) if idempotency_key else ""
        refusal = self._schema_refusal()
        if refusal is not None:
            replay = await self._replay(idempotency_key, fingerprint) if idempotency_key else None
            if replay is not None:
                return self._replayed(replay), True
            raise EventSchemaRefused(refusal.subject, refusal.detail or "refused", refusal.fields, self._retry_after)
        now = self._clock()
        order = accept(uuid.uuid4(), request, now)
        event = order_created(order)
        self._publishable(event)
        key = IdempotencyRecord(idempotency_key, fingerprint, order.order_id, now) if idempotency_key else None
        try:
            await self._uow.add(order, event, key)
        except IdempotencyKeyTaken:
            # An earlier request (or a concurrent one) placed an order with this key: answer as its replay. The key
            # is looked up only now, so a new order costs no read before its write.
            assert idempotency_key is not None
            replay = await self._replay(idempotency_key, fingerprint)
            if replay is not None:
                return self._replayed(replay), True
            raise
        self._metrics.orders_created.inc()
        with order_context(order.order_id):
            log.info(
                "order accepted",
                extra={"status": order.status.value, "items": len(order.lines), "totalAmount": str(order.total)},
            )
        return order, False

    @staticmethod
    def _replayed(order: Order) -> Order:
        """order, answered again for its Idempotency-Key: no state changes, so DEBUG only."""
        with order_context(order.order_id):
            log.debug("order replayed for its Idempotency-Key", extra={"status": order.status.value})
        return order

    async def cancel(self, order_id: uuid.UUID, reason: str | None) -> Order:
        """Ask to cancel the order: record the request and its OrderCancelled event in one transaction, and
        return the order (its cancellation Requested; the Fulfillment Service's answer follows as events).

        Idempotent: when a cancellation was requested before, the order is returned as it is and nothing is
        stored or published (the first request's reason stays). Raises OrderNotFound, and OrderNotCancellable
        for an order that is Fulfilled or Failed without an earlier request.
        """
        with order_context(order_id):
            request = CancellationRequest(self._clock(), reason)
            order = await self._uow.request_cancellation(order_id, request)
            if order is None:
                raise OrderNotFound(order_id)
            if order.cancellation is None:
                log.debug("cancellation not possible", extra={"status": order.status.value})
                raise OrderNotCancellable(order_id, order.status.value)
            if order.cancellation == request:
                log.info("cancellation requested", extra={"status": order.status.value, "reason": reason})
            else:
                log.debug("cancellation requested again", extra={"status": order.status.value})
            return order

    def release_long_polls(self) -> None:
        """Answer every waiting long poll now, and later ones without waiting, with the order as last read: the
        server is stopping (httpapi.serve calls it before it waits for requests in flight)."""
        self._waiter.release_all()

    async def get(
        self, order_id: uuid.UUID, wait_for: Collection[OrderStatus] = (), timeout_seconds: float = 0.0
    ) -> Order:
        """The order; with wait_for, once its status is one of them or timeout_seconds passed, whichever
        comes first (a long poll, see StatusWaiter: at the timeout the order as last read, at most about a
        second old). Raises OrderNotFound."""
        if not wait_for or timeout_seconds <= 0:
            order = await self._uow.get(order_id)
            if order is None:
                raise OrderNotFound(order_id)
            return order
        started = time.monotonic()
        waiting = self._metrics.long_polls_waiting
        waiting.inc()
        try:
            return await self._wait(order_id, wait_for, timeout_seconds, started)
        finally:
            waiting.dec()

    async def _wait(
        self, order_id: uuid.UUID, wait_for: Collection[OrderStatus], timeout_seconds: float, started: float
    ) -> Order:
        with self._waiter.watching(order_id, wait_for) as watch:
            await watch.first_read.wait()  # the waiter's shared read, one for all requests arriving together
            if watch.failed:  # no shared read: read it here, raising what a plain read raises
                order = await self._uow.get(order_id)
                if order is None:
                    raise OrderNotFound(order_id)
                watch.offer(order)
            elif watch.missing:
                raise OrderNotFound(order_id)
            remaining = timeout_seconds - (time.monotonic() - started)  # the read counts against the timeout
            if remaining > 0:
                await watch.wait(remaining)
            assert watch.latest is not None
            return watch.latest

    async def list_orders(
        self, customer_id: str | None, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> OrderPage:
        """Up to limit orders, newest first, of customer_id and in status when given, after cursor (the
        next_cursor of an earlier page) when given. Raises InvalidCursor for a cursor no page handed out."""
        return await self._uow.list_orders(customer_id, status, limit, cursor)

    async def republish_stale_orders(self, stale_after: timedelta, max_interval: timedelta, limit: int = 500) -> int:
        """Publish OrderCreated again for up to limit unfinished orders without fulfillment progress for
        stale_after; returns how many. An order is published again at most after stale_after, then after
        twice that, and so on up to max_interval. Consumers are idempotent, so this only heals: a skipped
        offset, a recreated topic, a lost registry or a dead-lettered valid record."""
        now = self._clock()
        count = await self._uow.republish_stale(now - stale_after, now, limit, stale_after, max_interval)
        if count:
            log.warning(
                "published OrderCreated again for %d order(s) without fulfillment progress for %g s",
                count,
                stale_after.total_seconds(),
            )
        return count

    async def stale_orders(self, stale_after: timedelta) -> tuple[int, timedelta | None]:
        """How many unfinished orders had no fulfillment progress for stale_after, and the longest time
        without progress among them (None when there are none)."""
        now = self._clock()
        count, oldest = await self._uow.stale_summary(now - stale_after)
        return count, None if oldest is None else now - oldest

    async def purge_expired_keys(self) -> int:
        """Forget the Idempotency-Keys older than their time to live; returns how many."""
        return await self._uow.purge_keys(self._clock() - self._idempotency_ttl)

    async def _replay(self, key: str, fingerprint: str) -> Order | None:
        """The order an earlier request with key created, if the key is alive. Raises IdempotencyKeyReused
        when that request was another order."""
        found = await self._uow.find_key(key)
        if found is None:
            return None
        record, order = found
        if record.expired(self._clock(), self._idempotency_ttl):
            return None
        if record.request_hash != fingerprint:
            raise IdempotencyKeyReused(key)
        return order
