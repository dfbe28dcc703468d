"""Runs the provider calls that are due again: retries after a failure, orders that waited for the
breaker, orders whose worker died mid-call, and simulated deliveries. Reads them from the database,
so pending retries survive a restart."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Connection

from fulfillment_service import store
from fulfillment_service.fulfiller import Fulfiller
from persistence.group_commit import GroupCommitter

log = logging.getLogger(__name__)


class RetryScheduler:
    def __init__(
        self, db: GroupCommitter, fulfiller: Fulfiller, lease_seconds: float, interval: float = 0.25, batch: int = 200
    ) -> None:
        self._db = db
        self._fulfiller = fulfiller
        self._lease = lease_seconds
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retry scheduler tick failed")
            await asyncio.sleep(self._interval)

    async def _tick(self) -> None:
        busy = set(self._fulfiller.active)
        due = await self._db.submit(lambda c: self._claim(c, busy))
        for row in due:
            task = asyncio.get_running_loop().create_task(self._fulfiller.attempt(row))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        deliveries = await self._db.submit(lambda c: store.due_for_delivery(c, time.time(), self._batch))
        for row in deliveries:
            await self._fulfiller.deliver(row)

    def _claim(self, conn: Connection, busy: set[str]) -> list[dict]:
        now = time.time()
        return store.claim_due_for_retry(conn, now, now + self._lease, self._batch, busy)
