"""The unit of work: a use case says what to write, and it is written in one transaction with its event.

A use case hands over a domain `Transition` (a new fulfillment, or changed fields of one, and the event
reporting it). The unit of work writes the row and puts the event in the outbox in one transaction,
through the group committer, so the state changes of many orders in flight share commits. The event's outbox
entry is made on the caller's task and carries its trace context (the record's processing span, see
messaging.consumer.tracing), so the relay continues that trace. Reads for the
API go through a FulfillmentReader, on threads of its own. Use cases see no connection, SQL or outbox table.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from sqlalchemy import Connection, Engine

from contract_models.events import FulfillmentStatusChanged
from fulfillment_service import store
from fulfillment_service.domain import Fulfillment, InvalidTransition, Transition
from observability.logs import order_context
from observability.trace_context import capture
from outbox.table import OutboxEntry, add_to_outbox
from persistence.group_commit import GroupCommitter

log = logging.getLogger(__name__)

# Given the order's fulfillment as stored now (None: never picked up), the transition to record (None: none).
Decision = Callable[[Fulfillment | None], Transition | None]

# Threads that read at once: as many as the request thread pool that ran these reads before offered.
READ_THREADS = 40


class UnitOfWork(Protocol):
    """Where the fulfillment use cases record transitions and find work that is due."""

    async def add(self, transition: Transition) -> tuple[Fulfillment, bool]:
        """Record a new fulfillment and its event, unless the order already has one. Returns the stored
        fulfillment and True when it is the new one, or the existing one (untouched) and False."""
        ...

    async def apply(self, transition: Transition) -> bool:
        """Write the transition's changed fields and its event, if the stored status is still the one the
        transition expects; False when it is not (another worker moved the order on), writing nothing."""
        ...

    async def decide(self, order_id: uuid.UUID, decision: Decision) -> tuple[Fulfillment | None, bool]:
        """In one transaction: read the order's fulfillment (its row locked), hand it to decision, and record
        the transition it returns with its event. This serialises changes that depend on the row as it is now
        (a cancellation, the start of a provider call, a call's outcome). A decision raising InvalidTransition
        records nothing. Returns the fulfillment as stored after, and whether a transition was recorded."""
        ...

    async def publish(self, event: FulfillmentStatusChanged) -> None:
        """Publish event (through the outbox) without changing any state."""
        ...

    async def claim_due_for_retry(self, lease: timedelta, limit: int, busy: Collection[uuid.UUID]) -> list[Fulfillment]:
        """Claim up to limit Pending orders due now (none in busy) for lease, so no other worker takes them
        meanwhile; each is claimed once, even by instances sharing the database."""
        ...

    async def due_for_delivery(self, limit: int) -> list[Fulfillment]:
        """Up to limit Shipped orders whose simulated delivery is due now."""
        ...


class SqlUnitOfWork:
    """The UnitOfWork on the service's database: each call is one transaction of the group committer.

    Events go to the outbox for topic, keyed by order id; on_event_written is called after a transaction
    that carried an event (to wake the relay). clock gives the current UTC time for claims and deliveries,
    read when their transaction runs.
    """

    def __init__(
        self,
        committer: GroupCommitter,
        topic: str,
        on_event_written: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = functools.partial(datetime.now, UTC),
    ) -> None:
        self._committer = committer
        self._topic = topic
        self._on_event_written = on_event_written
        self._clock = clock

    async def add(self, transition: Transition) -> tuple[Fulfillment, bool]:
        """See UnitOfWork.add; the new fulfillment keeps the caller's trace context. Raises ValueError for a
        transition of an existing fulfillment."""
        if transition.expected is not None:
            raise ValueError(f"not a new fulfillment: expects status {transition.expected}")
        # The new fulfillment keeps the trace it was picked up in, for the attempts the scheduler makes later.
        traced = dataclasses.replace(transition.fulfillment, trace_context=capture())
        transition = dataclasses.replace(transition, fulfillment=traced)
        stored = await self._committer.submit(functools.partial(self._add, transition, self._entries(transition)))
        self._after(transition)
        return stored

    async def apply(self, transition: Transition) -> bool:
        """See UnitOfWork.apply. Raises ValueError for a new fulfillment (use add)."""
        if transition.expected is None:
            raise ValueError("a new fulfillment is added, not applied")
        applied = await self._committer.submit(functools.partial(self._apply, transition, self._entries(transition)))
        self._after(transition)
        return applied

    async def decide(self, order_id: uuid.UUID, decision: Decision) -> tuple[Fulfillment | None, bool]:
        """See UnitOfWork.decide. The decision runs on the group committer's thread; its event's outbox entry
        continues the caller's trace context (taken here, on the caller's task), which a new fulfillment keeps. A
        transition the store refuses although the row was read locked (another writer's row came first, or its
        status moved on) records nothing, as one the decision did not return, and is logged as a WARNING."""
        context = otel_context.get_current()
        stored, transition, overtaken = await self._committer.submit(
            functools.partial(self._decide, order_id, decision, context)
        )
        if overtaken is not None:
            with order_context(order_id):
                log.warning(
                    "a change to %s was not recorded: the order's row changed while it was decided",
                    overtaken.fulfillment.status.value,
                    extra={"status": stored.status.value if stored is not None else None},
                )
        if transition is not None:
            self._after(transition)
        return stored, transition is not None

    async def publish(self, event: FulfillmentStatusChanged) -> None:
        """See UnitOfWork.publish."""
        entry = OutboxEntry.of(self._topic, str(event.orderId), event)
        await self._committer.submit(lambda conn: add_to_outbox(conn, store.outbox, [entry]))
        self._on_event_written()

    async def claim_due_for_retry(self, lease: timedelta, limit: int, busy: Collection[uuid.UUID]) -> list[Fulfillment]:
        """See UnitOfWork.claim_due_for_retry."""
        return await self._committer.submit(functools.partial(self._claim, lease, limit, busy))

    async def due_for_delivery(self, limit: int) -> list[Fulfillment]:
        """See UnitOfWork.due_for_delivery."""
        return await self._committer.submit(functools.partial(self._due_for_delivery, limit))

    def _add(self, transition: Transition, entries: list[OutboxEntry], conn: Connection) -> tuple[Fulfillment, bool]:
        existing = store.insert_if_absent(conn, transition.fulfillment)
        if existing is not None:
            return existing, False
        add_to_outbox(conn, store.outbox, entries)
        return transition.fulfillment, True

    def _apply(self, transition: Transition, entries: list[OutboxEntry], conn: Connection) -> bool:
        assert transition.expected is not None
        if not store.update_if_status(conn, transition.fulfillment, transition.expected, transition.changed):
            return False
        add_to_outbox(conn, store.outbox, entries)
        return True

    def _decide(
        self, order_id: uuid.UUID, decision: Decision, context: Context, conn: Connection
    ) -> tuple[Fulfillment | None, Transition | None, Transition | None]:
        """(the fulfillment as stored after, the transition recorded, the transition the row's change overtook:
        one the decision returned that the store refused, its row not what was read)."""
        current = store.get(conn, order_id, for_update=True)
        try:
            transition = decision(current)
        except InvalidTransition:
            transition = None
        if transition is None:
            return current, None, None
        if transition.expected is None:
            traced = dataclasses.replace(transition.fulfillment, trace_context=capture(context))
            transition = dataclasses.replace(transition, fulfillment=traced)
            if store.insert_if_absent(conn, transition.fulfillment) is not None:
                return current, None, transition
        elif not store.update_if_status(conn, transition.fulfillment, transition.expected, transition.changed):
            return current, None, transition
        add_to_outbox(conn, store.outbox, self._entries(transition, context))
        return transition.fulfillment, transition, None

    def _claim(self, lease: timedelta, limit: int, busy: Collection[uuid.UUID], conn: Connection) -> list[Fulfillment]:
        now = self._clock()
        return store.claim_due_for_retry(conn, now, now + lease, limit, busy)

    def _due_for_delivery(self, limit: int, conn: Connection) -> list[Fulfillment]:
        return store.due_for_delivery(conn, self._clock(), limit)

    def _entries(self, transition: Transition, context: Context | None = None) -> list[OutboxEntry]:
        """The outbox entry of the transition's event (none without one) in the trace of context (default: the
        current one, so make it on the caller's task: the group committer's thread has none)."""
        if transition.event is None:
            return []
        return [OutboxEntry.of(self._topic, str(transition.fulfillment.order_id), transition.event, context)]

    def _after(self, transition: Transition) -> None:
        if transition.event is not None:
            self._on_event_written()


class FulfillmentReader(Protocol):
    """Where the fulfillment read use case finds what the service recorded."""

    async def get(self, order_id: uuid.UUID) -> Fulfillment | None:
        """The order's fulfillment, or None when the order was never picked up."""
        ...


class SqlFulfillmentReader:
    """The FulfillmentReader on the service's database (engine): each read is one connection, on one of up to
    read_threads threads of its own (started as reads need them; they end with the reader)."""

    def __init__(self, engine: Engine, *, read_threads: int = READ_THREADS) -> None:
        self._engine = engine
        self._readers = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="fulfillment-reader")

    async def get(self, order_id: uuid.UUID) -> Fulfillment | None:
        """See FulfillmentReader.get. Raises what the database raises."""
        context = contextvars.copy_context()  # the caller's log context (its orderId) goes with the read
        return await asyncio.get_running_loop().run_in_executor(self._readers, context.run, self._get, order_id)

    def _get(self, order_id: uuid.UUID) -> Fulfillment | None:
        with self._engine.connect() as conn:
            return store.get(conn, order_id)
