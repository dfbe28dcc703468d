"""Long polls: requests wait for an order to reach a status, served by one shared re-read of the database.

However many requests wait, one task reads their orders: at once for the orders of requests that just started
waiting (their first read) and for the orders this instance's projection changed (notify_threadsafe), and every
recheck_seconds for all of them, in batches of READ_BATCH ids, since a replica only hears of the changes its own
projection applied. A waiting request costs a timer and a set entry, not a read of its own (hundreds arriving at
once share a few reads instead of queueing one each in front of other requests' reads), and returns at its
timeout (to the event loop's timer precision) with the order as last read.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field

from observability.throttled_log import ThrottledLog
from order_service.domain import Order, OrderStatus

log = logging.getLogger(__name__)

# Ids per query of the shared re-read (SQLite allows 32,766 bound parameters; PostgreSQL 65,535).
READ_BATCH = 500
RECHECK_SECONDS = 1.0

ReadOrders = Callable[[Collection[uuid.UUID]], Awaitable[Mapping[uuid.UUID, Order]]]


@dataclass(eq=False)
class Watch:
    """One waiting request: the statuses it waits for, and the order as last read (None until read)."""

    wanted: frozenset[OrderStatus]
    latest: Order | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the shared reader read the order for this request: found (latest), missing, or failed.
    first_read: asyncio.Event = field(default_factory=asyncio.Event)
    missing: bool = False  # the shared read found no such order
    failed: bool = False  # the shared read failed (or there is no reader): the request reads the order itself

    def offer(self, order: Order) -> None:
        """The order as the request read it itself; kept unless the shared re-read already gave a newer one."""
        if self.latest is None:
            self._update(order)

    async def wait(self, timeout_seconds: float) -> None:
        """Return once the order's status is wanted, or when timeout_seconds passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.reached.wait(), timeout_seconds)

    def _update(self, order: Order) -> None:
        self.latest = order
        if order.status in self.wanted:
            self.reached.set()


class StatusWaiter:
    """Waiting requests, and the one task that re-reads their orders.

    read_orders(ids) returns the orders of ids that exist (blocking work done off the loop by the caller's
    unit of work); bind() must be called on the loop the requests run on before anyone waits.
    """

    def __init__(self, read_orders: ReadOrders | None = None, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._read_orders = read_orders
        self._recheck = recheck_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        self._changed: set[uuid.UUID] = set()
        self._kick = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)
        self._released = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver wake-ups on loop, the one the waiting requests run on; until then notify does nothing."""
        self._loop = loop

    @property
    def waiting(self) -> int:
        """How many requests are waiting now."""
        return sum(len(watches) for watches in self._watches.values())

    def notify_threadsafe(self, order_ids: list[uuid.UUID]) -> None:
        """Tell the waiters that order_ids changed (they are read again at once); callable from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._mark_changed, order_ids)

    def release_all(self) -> None:
        """Let every waiting request return now, and every later one as soon as its order was read, each with the
        order as last read (as at its timeout): the server is stopping and will not wait out long timeouts."""
        self._released = True
        for watches in self._watches.values():
            for watch in watches:
                watch.reached.set()

    @contextlib.contextmanager
    def watching(self, order_id: uuid.UUID, wanted: Collection[OrderStatus]) -> Iterator[Watch]:
        """Register a request waiting for order_id to reach a status of wanted, for the duration of the block.

        The order is read for the request by the shared reader (await watch.first_read; then latest, missing or
        failed tell what it found; when failed, read it yourself and offer() it). Registered before that read, a
        change applied meanwhile is seen (it marks the order for the shared re-read), not missed until the next
        full re-read.
        """
        watch = Watch(frozenset(wanted))
        if self._released:
            watch.reached.set()
        self._watches.setdefault(order_id, set()).add(watch)
        self._mark_changed([order_id])
        if self._reader is None or self._reader.done():
            # A context of its own: it serves every waiting request, not the one whose request started it (whose
            # orderId and span would otherwise be on its log lines and reads for as long as anyone waits).
            self._reader = asyncio.create_task(self._read_while_waited(), context=contextvars.Context())
        try:
            yield watch
        finally:
            watches = self._watches.get(order_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[order_id]

    def _mark_changed(self, order_ids: list[uuid.UUID]) -> None:
        waited = [order_id for order_id in order_ids if order_id in self._watches]
        if waited:
            self._changed.update(waited)
            self._kick.set()

    async def _read_while_waited(self) -> None:
        """Re-read the waited orders until nobody waits: the changed ones when told, all every recheck."""
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self._recheck
        while self._watches:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), max(0.0, next_full - loop.time()))
            self._kick.clear()
            if loop.time() >= next_full:
                ids, next_full = list(self._watches), loop.time() + self._recheck
                self._changed.clear()
            else:
                ids, self._changed = [i for i in self._changed if i in self._watches], set()
            try:
                await self._refresh(ids)
            except Exception as exc:  # the database is away: the waiters keep what they have and time out
                self._failures.error(type(exc).__name__, f"re-reading {len(ids)} waited orders failed", exc)
                self._first_read_failed(ids)

    async def _refresh(self, ids: list[uuid.UUID]) -> None:
        if self._read_orders is None:
            self._first_read_failed(ids)
            return
        for start in range(0, len(ids), READ_BATCH):
            batch = ids[start : start + READ_BATCH]
            found = await self._read_orders(batch)
            for order_id in batch:
                order = found.get(order_id)
                for watch in self._watches.get(order_id, ()):
                    if order is None:
                        watch.missing = watch.latest is None
                    else:
                        watch._update(order)
                    watch.first_read.set()

    def _first_read_failed(self, ids: list[uuid.UUID]) -> None:
        for order_id in ids:
            for watch in self._watches.get(order_id, ()):
                if not watch.first_read.is_set():
                    watch.failed = True
                    watch.first_read.set()
