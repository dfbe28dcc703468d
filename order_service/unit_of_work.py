"""The unit of work: where the order use cases read and record orders, off the event loop.

A new order, its OrderCreated event (in the outbox) and its Idempotency-Key are written in one transaction,
through the group committer, so concurrent requests share commits. Reads and the key purge run on a pool of
reader threads. The fulfillment projection's batches are written on the caller's thread (the consumer's
worker), one transaction each. Use cases see no connection, SQL or outbox table, only domain objects.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import uuid
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from contract_models.events import OrderCreated
from order_service import store
from order_service.domain import (
    CancellationRequest,
    FulfillmentView,
    Order,
    OrderPage,
    OrderStatus,
    request_cancellation,
)
from order_service.idempotency import IdempotencyRecord
from order_service.publishing import order_cancelled, order_created
from outbox.table import OutboxEntry, add_to_outbox
from persistence.engine import write_transaction
from persistence.group_commit import GroupCommitter

T = TypeVar("T")
# Given what the orders know of their fulfillment, by order id, the views to write (changed ones only).
FulfillmentChange = Callable[[Mapping[uuid.UUID, FulfillmentView]], Mapping[uuid.UUID, FulfillmentView]]
# Threads that read at once: as many as the request thread pool that ran these reads before offered.
READ_THREADS = 40


class IdempotencyKeyTaken(Exception):
    """The order's Idempotency-Key was stored by another request first; nothing was written."""


class OrderUnitOfWork(Protocol):
    """Where the order use cases read and record orders."""

    async def add(self, order: Order, event: OrderCreated, key: IdempotencyRecord | None) -> None:
        """Record a new order, its event and the key it was placed with (if any) in one transaction.
        Raises IdempotencyKeyTaken when the key is in use already, writing nothing."""
        ...

    async def find_key(self, key: str) -> tuple[IdempotencyRecord, Order | None] | None:
        """The record of an Idempotency-Key (expired or not) and the order it created, read together;
        None when the key is not in use."""
        ...

    async def request_cancellation(self, order_id: uuid.UUID, request: CancellationRequest) -> Order | None:
        """In one transaction: record request on the order and its OrderCancelled event, unless the domain says
        there is nothing to record (domain.request_cancellation: requested before, or the order is final).
        Returns the order as it is after (None: there is no such order)."""
        ...

    async def get(self, order_id: uuid.UUID) -> Order | None:
        """The order, or None when there is none with order_id."""
        ...

    async def get_many(self, order_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, Order]:
        """The orders of order_ids that exist, by order id."""
        ...

    async def list_orders(
        self, customer_id: str | None, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> OrderPage:
        """Up to limit orders, newest first, of customer_id and in status when given, after the position cursor
        names (a next_cursor of an earlier page). Raises InvalidCursor for a cursor no page handed out."""
        ...

    async def purge_keys(self, older_than: datetime) -> int:
        """Forget the Idempotency-Keys created before older_than; returns how many."""
        ...

    async def republish_stale(
        self, changed_before: datetime, now: datetime, limit: int, first_interval: timedelta, cap: timedelta
    ) -> int:
        """Publish OrderCreated again (and OrderCancelled after it for an order whose cancellation was requested),
        in one transaction, for up to limit unfinished orders last changed
        before changed_before and due for it at now (see store.stale_orders), and schedule their next time
        (store.schedule_next_republish); returns how many."""
        ...

    async def stale_summary(self, changed_before: datetime) -> tuple[int, datetime | None]:
        """How many unfinished orders were last changed before changed_before, and the oldest such change."""
        ...

    def change_fulfillments(
        self, order_ids: Collection[uuid.UUID], change: FulfillmentChange, now: datetime
    ) -> list[uuid.UUID]:
        """In one transaction: read the fulfillment views of the orders of order_ids that exist, hand them to
        change, and write the views it returns, updated at now. Returns the ids written, in change's order.
        Blocking, on the caller's thread. Raises what the database or change raises; nothing is written then."""
        ...

    async def stop(self) -> None:
        """Finish the writes under way; nothing is accepted after."""
        ...


class SqlOrderUnitOfWork:
    """The OrderUnitOfWork on the service's database (engine).

    Events go to the outbox for topic, keyed by order id; on_event_written is called after each transaction
    that carried one (to wake the relay). read_threads bound the reads that run at once. stop() when done.
    """

    def __init__(
        self,
        engine: Engine,
        topic: str,
        on_event_written: Callable[[], None] = lambda: None,
        *,
        read_threads: int = READ_THREADS,
    ) -> None:
        self._engine = engine
        self._topic = topic
        self._on_event_written = on_event_written
        self._writer = GroupCommitter(engine, "order-writer")
        self._readers = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="order-reader")

    async def add(self, order: Order, event: OrderCreated, key: IdempotencyRecord | None) -> None:
        """See OrderUnitOfWork.add. Raises sqlalchemy's IntegrityError for a conflict without a key."""
        entry = OutboxEntry.of(self._topic, str(order.order_id), event)
        try:
            written = await self._writer.submit(functools.partial(self._add, order, entry, key))
        except IntegrityError as exc:
            if key is None:
                raise
            raise IdempotencyKeyTaken(key.key) from exc
        if not written:
            assert key is not None
            raise IdempotencyKeyTaken(key.key)
        self._on_event_written()

    async def find_key(self, key: str) -> tuple[IdempotencyRecord, Order | None] | None:
        """See OrderUnitOfWork.find_key."""
        return await self._read(functools.partial(_find_key, key))

    async def request_cancellation(self, order_id: uuid.UUID, request: CancellationRequest) -> Order | None:
        """See OrderUnitOfWork.request_cancellation. The OrderCancelled continues the caller's trace (its context is
        taken here, on the caller's task: the group committer's thread has none)."""
        context = otel_context.get_current()
        order, published = await self._writer.submit(functools.partial(self._cancel, order_id, request, context))
        if published:
            self._on_event_written()
        return order

    async def get(self, order_id: uuid.UUID) -> Order | None:
        """See OrderUnitOfWork.get."""
        return await self._read(functools.partial(store.get_order, order_id=order_id))

    async def get_many(self, order_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, Order]:
        """See OrderUnitOfWork.get_many."""
        return await self._read(functools.partial(store.get_orders, order_ids=order_ids))

    async def list_orders(
        self, customer_id: str | None, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> OrderPage:
        """See OrderUnitOfWork.list_orders."""
        after = store.decode_cursor(cursor) if cursor is not None else None
        return await self._read(
            functools.partial(store.list_orders, customer_id=customer_id, status=status, limit=limit, after=after)
        )

    async def purge_keys(self, older_than: datetime) -> int:
        """See OrderUnitOfWork.purge_keys."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._purge, older_than)

    async def republish_stale(
        self, changed_before: datetime, now: datetime, limit: int, first_interval: timedelta, cap: timedelta
    ) -> int:
        """See OrderUnitOfWork.republish_stale."""
        republished = await self._writer.submit(
            functools.partial(self._republish, changed_before, now, limit, first_interval, cap)
        )
        if republished:
            self._on_event_written()
        return republished

    async def stale_summary(self, changed_before: datetime) -> tuple[int, datetime | None]:
        """See OrderUnitOfWork.stale_summary."""
        return await self._read(functools.partial(store.stale_summary, changed_before=changed_before))

    def change_fulfillments(
        self, order_ids: Collection[uuid.UUID], change: FulfillmentChange, now: datetime
    ) -> list[uuid.UUID]:
        """See OrderUnitOfWork.change_fulfillments: its own transaction on the engine, beside the group
        committer's (so it still writes after stop())."""
        with write_transaction(self._engine) as conn:
            updated = change(store.fulfillment_views(conn, order_ids))
            store.save_fulfillment_views(conn, dict(updated), now)
        return list(updated)

    async def stop(self) -> None:
        """Finish the queued writes and release the threads."""
        await self._writer.stop()
        self._readers.shutdown(wait=False)

    @staticmethod
    def _add(order: Order, entry: OutboxEntry, key: IdempotencyRecord | None, conn: Connection) -> bool:
        # The key first, skipped when in use: a replayed request then writes nothing and fails no statement, so the
        # others sharing its group commit are not rolled back and retried one by one.
        if key is not None and not store.insert_idempotency_key(conn, key):
            return False
        store.insert_order(conn, order)
        add_to_outbox(conn, store.outbox, [entry])
        return True

    def _cancel(
        self, order_id: uuid.UUID, request: CancellationRequest, context: Context, conn: Connection
    ) -> tuple[Order | None, bool]:
        order = store.get_order(conn, order_id)
        if order is None:
            return None, False
        requested = request_cancellation(order, request)
        if requested is None:
            return order, False
        if not store.record_cancellation(conn, requested):  # another replica recorded one first
            return store.get_order(conn, order_id), False
        entry = OutboxEntry.of(self._topic, str(order_id), order_cancelled(requested), context)
        add_to_outbox(conn, store.outbox, [entry])
        return requested, True

    def _republish(
        self,
        changed_before: datetime,
        now: datetime,
        limit: int,
        first_interval: timedelta,
        cap: timedelta,
        conn: Connection,
    ) -> int:
        stale = store.stale_orders(conn, changed_before, now, limit)
        if stale:
            entries = []
            for order in stale:  # a cancellation requested goes again after its order, in this order
                entries.append(OutboxEntry.of(self._topic, str(order.order_id), order_created(order)))
                if order.cancellation is not None:
                    entries.append(OutboxEntry.of(self._topic, str(order.order_id), order_cancelled(order)))
            add_to_outbox(conn, store.outbox, entries)
            store.schedule_next_republish(conn, [order.order_id for order in stale], now, first_interval, cap)
        return len(stale)

    async def _read(self, query: Callable[[Connection], T]) -> T:
        # In the caller's context: a line logged (or a span started) by the read belongs to the caller's order.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._readers, context.run, self._in_connection, query)

    def _in_connection(self, query: Callable[[Connection], T]) -> T:
        with self._engine.connect() as conn:
            return query(conn)

    def _purge(self, older_than: datetime) -> int:
        with write_transaction(self._engine) as conn:
            return store.purge_idempotency_keys(conn, older_than)


def _find_key(key: str, conn: Connection) -> tuple[IdempotencyRecord, Order | None] | None:
    record = store.find_idempotency_key(conn, key)
    return None if record is None else (record, store.get_order(conn, record.order_id))
