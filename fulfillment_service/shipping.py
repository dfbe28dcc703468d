"""The shipping provider: the interface the use cases call, and the mock embedded in the service.

The mock behaves like a remote API: 100-500 ms latency, 10 % random failures, and honours an idempotency
key (the order id), so a repeated request for an order returns the shipment already created instead of a
second one. It estimates delivery 2-5 days ahead within its home country (PROVIDER_HOME_COUNTRY) and for an
order without a destination, 7-12 days ahead for any other country. Its ledger is durable (its own
database), as a real provider's records would be; the ledger is also how tests count shipments per order.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Column, Connection, Engine, Float, Integer, MetaData, String, Table, bindparam, select, update

from fulfillment_service.domain import Destination, Shipment
from persistence.group_commit import GroupCommitter
from persistence.statements import InsertIfAbsent

CARRIER = "MockCarrier"
# Days from shipping to the estimated delivery: within the home country (or without a destination), and abroad.
# The ranges do not overlap, so every estimate abroad is later than every one at home.
HOME_DELIVERY_DAYS = (2.0, 5.0)
ABROAD_DELIVERY_DAYS = (7.0, 12.0)
DEFAULT_HOME_COUNTRY = "DE"

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


class ShippingProvider(Protocol):
    """Ships orders, idempotently: a request with a key that already has a shipment returns that one."""

    async def create_shipment(self, idempotency_key: str, destination: Destination | None) -> Shipment:
        """Ship the order with this key (the order id) to destination (None: the order has no address, the
        provider ships it as it did before addresses), or return the shipment it already has. Raises
        ProviderError when the call fails; it may also hang, so callers enforce a timeout."""
        ...

    async def find_shipment(self, idempotency_key: str) -> Shipment | None:
        """The shipment already created for this key, if any; ships nothing."""
        ...


@dataclass
class ProviderBehaviour:
    """Adjustable at run time so tests and chaos runs can drive outages and slowness."""

    min_latency_ms: int = 100
    max_latency_ms: int = 500
    failure_rate: float = 0.10


class MockShippingProvider:
    """A ShippingProvider with adjustable latency and failure rate, its ledger in its own database.

    home_country: the ISO 3166-1 alpha-2 code the provider ships from; a destination elsewhere gets a later
    estimated delivery (estimate_delivery). calls and failures count create_shipment calls; start() before use
    (it creates the ledger table if missing and writes through a group committer on the running event loop),
    stop() at shutdown. Building one touches no database.
    """

    def __init__(
        self,
        engine: Engine,
        behaviour: ProviderBehaviour,
        rng: random.Random | None = None,
        home_country: str = DEFAULT_HOME_COUNTRY,
    ) -> None:
        self._engine = engine
        self.behaviour = behaviour
        self.home_country = home_country
        self._ledger = GroupCommitter(engine, "shipping-ledger")
        self._rng = rng or random.Random()
        self.calls = 0
        self.failures = 0

    def start(self) -> None:
        """Create the ledger table if missing (the provider's own database, a stand-in for a remote system, so
        no migrations) and start the ledger's writer on the running event loop. Blocking for the DDL."""
        ledger_metadata.create_all(self._engine)
        self._ledger.start()

    async def stop(self) -> None:
        """Finish queued ledger writes and stop the writer."""
        await self._ledger.stop()

    def estimate_delivery(self, shipped_at: float, destination: Destination | None) -> float:
        """When a parcel shipped at shipped_at (epoch s) to destination should arrive (epoch s): HOME_DELIVERY_DAYS
        later within the home country or without a destination, ABROAD_DELIVERY_DAYS later for another country."""
        abroad = destination is not None and destination.country != self.home_country
        low, high = ABROAD_DELIVERY_DAYS if abroad else HOME_DELIVERY_DAYS
        return shipped_at + self._rng.uniform(low, high) * 86_400

    async def create_shipment(self, idempotency_key: str, destination: Destination | None) -> Shipment:
        """Ship an order to destination (estimate_delivery). Raises ProviderError on a (random) failure; the
        caller enforces the timeout."""
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
            "estimated_delivery": self.estimate_delivery(now, destination),
            "created_at": now,
            "requests": 1,
        }
        return _shipment(await self._ledger.submit(lambda conn: _record(conn, candidate)))

    async def find_shipment(self, idempotency_key: str) -> Shipment | None:
        """The shipment already created for this key, if any (a lookup, not a new call to ship)."""
        row = await self._ledger.run_alone(lambda conn: _first(conn.execute(_FIND, {"b_key": idempotency_key})))
        return _shipment(row) if row else None


def _shipment(row: dict[str, Any]) -> Shipment:
    """The shipment of a ledger row (whose estimated delivery is epoch seconds)."""
    return Shipment(row["tracking_number"], row["carrier"], datetime.fromtimestamp(row["estimated_delivery"], UTC))


# The ledger's statements, built once (persistence.statements).
_BY_KEY = shipments.c.idempotency_key == bindparam("b_key")
_FIND = select(shipments).where(_BY_KEY)
_CREATE = InsertIfAbsent(shipments, shipments.c.idempotency_key)
_COUNT_REQUEST = update(shipments).where(_BY_KEY).values(requests=shipments.c.requests + 1).returning(*shipments.c)


def _record(conn: Connection, candidate: dict[str, Any]) -> dict[str, Any]:
    """Create the shipment, or count one more request for the one this key already has and return that one
    (the provider's idempotency): one statement for a new shipment, two for a repeated request. A shipment
    another process sharing the ledger is creating meanwhile is the one returned (on PostgreSQL the insert waits
    for it to commit)."""
    if conn.execute(_CREATE.on(conn), candidate).rowcount == 1:
        return candidate
    existing = _first(conn.execute(_COUNT_REQUEST, {"b_key": candidate["idempotency_key"]}))
    if existing is None:  # the ledger never deletes: a conflicting row stays
        raise RuntimeError(f"shipment {candidate['idempotency_key']}: skipped for a row that cannot be read")
    return existing


def _first(result: Any) -> dict[str, Any] | None:
    row = result.mappings().first()
    return dict(row) if row else None
