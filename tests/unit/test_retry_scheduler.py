"""The retry scheduler's attempts that raise (the provider's ledger on a full disk) are logged by the service once
per minute, not left to asyncio as exceptions nobody retrieved."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import timedelta
from typing import Any

import pytest

from fulfillment_service.scheduler import RetryScheduler


class DueEveryTick:
    """A unit of work with one order due on every tick and nothing to deliver."""

    def __init__(self) -> None:
        self.claims = 0

    async def claim_due_for_retry(self, lease: timedelta, limit: int, busy: Any) -> list[str]:
        self.claims += 1
        return [f"order-{self.claims}"]

    async def due_for_delivery(self, limit: int) -> list[str]:
        return []


class LedgerFull:
    """A fulfiller whose every attempt fails on the provider's full disk."""

    active: frozenset[str] = frozenset()
    call_lease = timedelta(seconds=30)

    async def attempt(self, fulfillment: str) -> None:
        raise OSError(28, "No space left on device")


def test_failed_attempts_are_logged_once_and_none_is_left_unretrieved(caplog: pytest.LogCaptureFixture) -> None:
    uow = DueEveryTick()

    async def scenario() -> None:
        scheduler = RetryScheduler(uow, LedgerFull(), interval=0.01)  # type: ignore[arg-type]
        scheduler.start()
        while uow.claims < 20:
            await asyncio.sleep(0.01)
        await scheduler.stop(grace=1)

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
        gc.collect()  # asyncio reports a task exception nobody retrieved when the task is collected
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "never retrieved" in m]
    assert len([m for m in messages if "provider attempt failed" in m]) == 1
