"""A scripted ShippingProvider for use-case tests: no latency, no randomness, every call recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fulfillment_service.domain import Destination, Shipment

HANG = "hang"  # an outcome: the call never answers (the caller's timeout ends it)


class Gate:
    """An outcome that holds the call until open() and then ships."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self._open = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        self.entered.set()
        await self._open.wait()


class FakeShippingProvider:
    """Each create_shipment takes the next scripted outcome: an exception is raised, HANG never answers, a
    Gate holds the call until opened; with no outcome left (or None) it ships. Idempotent by key like the
    real provider: a key that has a shipment gets that one back. calls and lookups list the keys asked for,
    destinations the destination of each call.
    """

    def __init__(self, *outcomes: Exception | Gate | str | None) -> None:
        self.outcomes = list(outcomes)
        self.shipments: dict[str, Shipment] = {}
        self.calls: list[str] = []
        self.destinations: list[Destination | None] = []
        self.lookups: list[str] = []

    async def create_shipment(self, idempotency_key: str, destination: Destination | None = None) -> Shipment:
        self.calls.append(idempotency_key)
        self.destinations.append(destination)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome == HANG:
            await asyncio.Event().wait()
        if isinstance(outcome, Gate):
            await outcome.wait()
        if isinstance(outcome, Exception):
            raise outcome
        return self.shipped_already(idempotency_key)

    async def find_shipment(self, idempotency_key: str) -> Shipment | None:
        self.lookups.append(idempotency_key)
        return self.shipments.get(idempotency_key)

    def shipped_already(self, idempotency_key: str) -> Shipment:
        """The key's shipment, created now if it has none (as a call that answered too late would have)."""
        if idempotency_key not in self.shipments:
            eta = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC) + timedelta(days=len(self.shipments))
            self.shipments[idempotency_key] = Shipment(f"SHIP-{len(self.shipments) + 1:04d}", "FakeCarrier", eta)
        return self.shipments[idempotency_key]
