"""Lets a request wait for an order's status to change instead of polling."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict


class StatusWaiter:
    """In-process wake-ups from the projection to waiting requests.

    A replica only hears about changes its own projection applied, so waiters also re-read the
    database at a short interval; the wake-up just makes the common case immediate.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver wake-ups on loop, the one the waiting requests run on; until then notify does nothing."""
        self._loop = loop

    def notify_threadsafe(self, order_ids: list[uuid.UUID]) -> None:
        """Wake the requests waiting for any of order_ids; callable from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._notify, order_ids)

    def _notify(self, order_ids: list[uuid.UUID]) -> None:
        for order_id in order_ids:
            for event in self._waiters.get(order_id, ()):
                event.set()

    async def wait(self, order_id: uuid.UUID, timeout: float) -> None:
        """Return when the order changed or timeout seconds passed."""
        event = asyncio.Event()
        self._waiters[order_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(order_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[order_id]
