"""The mock shipping provider, embedded in the service.

It behaves like a remote API: 100-500 ms latency, 10 % random failures, and honours an idempotency key
(the order id), so a repeated request for an order returns the shipment already created instead of a
second one. Its ledger is durable (its own database), as a real provider's records would be; the
ledger is also how tests count shipments per order.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Engine, Float, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from persistence.group_commit import GroupCommitter

CARRIER = "MockCarrier"

ledger_metadata = MetaData()
shipments = Table(
    "shipments",
    ledger_metadata,
    Column("idempotency_key", String(100), primary_key=True),
    Column("tracking_number", String(100), nullable=False, unique=True),
    Column("carrier", String(100), nullable=False),
    Column("estimated_delivery", Float, nullable=False),  # epoch s
    Column("created_at", Float, nullable=False),
    Column("requests", Integer, nullable=False, default=1),  # successful calls for this key
)


class ProviderError(Exception):
    """A failed provider call; worth retrying."""


@dataclass(frozen=True)
class Shipment:
    tracking_number: str
    carrier: str
    estimated_delivery: float  # epoch s
    status: str = "confirmed"


@dataclass
class ProviderBehaviour:
    """Adjustable at run time so tests and chaos runs can drive outages and slowness."""

    min_latency_ms: int = 100
    max_latency_ms: int = 500
    failure_rate: float = 0.10


class MockShippingProvider:
    def __init__(self, engine: Engine, behaviour: ProviderBehaviour, rng: random.Random | None = None) -> None:
        ledger_metadata.create_all(engine)
        self.behaviour = behaviour
        self._ledger = GroupCommitter(engine, "shipping-ledger")
        self._rng = rng or random.Random()
        self.calls = 0
        self.failures = 0

    def start(self) -> None:
        self._ledger.start()

    async def stop(self) -> None:
        await self._ledger.stop()

    async def create_shipment(self, idempotency_key: str) -> Shipment:
        """Ship an order. Raises ProviderError on a (random) failure; the caller enforces the timeout."""
        self.calls += 1
        behaviour = self.behaviour
        low, high = behaviour.min_latency_ms, max(behaviour.min_latency_ms, behaviour.max_latency_ms)
        await asyncio.sleep(self._rng.uniform(low, high) / 1000)
        if self._rng.random() < behaviour.failure_rate:
            self.failures += 1
            raise ProviderError("shipping provider returned 503 Service Unavailable")
        now = time.time()
        candidate = {
            "idempotency_key": idempotency_key,
            "tracking_number": f"SHIP-{secrets.token_hex(6).upper()}",
            "carrier": CARRIER,
            "estimated_delivery": now + self._rng.uniform(2, 5) * 86_400,
            "created_at": now,
            "requests": 1,
        }
        row = await self._ledger.submit(lambda conn: _record(conn, candidate))
        return Shipment(row["tracking_number"], row["carrier"], row["estimated_delivery"])

    async def find_shipment(self, idempotency_key: str) -> Shipment | None:
        """The shipment already created for this key, if any (a lookup, not a new call to ship)."""
        row = await self._ledger.run_alone(
            lambda conn: _first(conn.execute(select(shipments).where(shipments.c.idempotency_key == idempotency_key)))
        )
        return Shipment(row["tracking_number"], row["carrier"], row["estimated_delivery"]) if row else None


def _record(conn: Connection, candidate: dict[str, Any]) -> dict[str, Any]:
    """Create the shipment, or return the one this key already has (the provider's idempotency)."""
    key = candidate["idempotency_key"]
    existing = _first(conn.execute(select(shipments).where(shipments.c.idempotency_key == key)))
    if existing is not None:
        conn.execute(
            update(shipments).where(shipments.c.idempotency_key == key).values(requests=shipments.c.requests + 1)
        )
        return existing
    try:
        with conn.begin_nested():
            conn.execute(insert(shipments), [candidate])
    except IntegrityError:
        # Another process sharing the ledger created it a moment ago.
        return _first(conn.execute(select(shipments).where(shipments.c.idempotency_key == key))) or candidate
    return candidate


def _first(result: Any) -> dict[str, Any] | None:
    row = result.mappings().first()
    return dict(row) if row else None
