"""Runs the provider calls that are due again: retries after a failure, orders that waited for the
breaker, orders whose worker died mid-call, and simulated deliveries. Reads them from the database,
so pending retries survive a restart. An attempt that raises (its order's call lease then runs out and the
order is due again) is logged once per kind of failure and minute."""

from __future__ import annotations

import asyncio
import logging

from fulfillment_service.unit_of_work import UnitOfWork
from fulfillment_service.use_cases import Fulfiller
from observability.throttled_log import ThrottledLog

log = logging.getLogger(__name__)


class RetryScheduler:
    """Every interval seconds, claims up to batch due orders for the fulfiller's call lease and attempts each
    in its own task (not those the fulfiller is attempting already), then delivers due shipments."""

    def __init__(self, uow: UnitOfWork, fulfiller: Fulfiller, interval: float = 0.25, batch: int = 200) -> None:
        self._uow = uow
        self._fulfiller = fulfiller
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._failures = ThrottledLog(log)

    def start(self) -> None:
        """Start ticking on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace: float) -> None:
        """Stop claiming, and wait up to grace seconds for the attempts under way."""
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

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self._failures.error(
            type(exc).__name__, "a provider attempt failed; its order is due again after its lease", exc
        )

    async def _tick(self) -> None:
        busy = set(self._fulfiller.active)
        due = await self._uow.claim_due_for_retry(self._fulfiller.call_lease, self._batch, busy)
        for fulfillment in due:
            task = asyncio.get_running_loop().create_task(self._fulfiller.attempt(fulfillment))
            self._running.add(task)
            task.add_done_callback(self._finished)
        for fulfillment in await self._uow.due_for_delivery(self._batch):
            await self._fulfiller.deliver(fulfillment)
