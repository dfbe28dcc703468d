"""Rows written only if absent on PostgreSQL (INSERT ... ON CONFLICT DO NOTHING): a new fulfillment and a new
shipment in the mock provider's ledger are written once; a second writer of the same order, even one racing the
first's open transaction, gets the row that is stored, never an IntegrityError."""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from fulfillment_service import shipping, store
from fulfillment_service.domain import Destination, Fulfillment, Status, pick_up
from harness.waiting import wait_until
from persistence.engine import make_engine
from persistence.migrations import upgrade_to_head

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "fulfillment_service" / "migrations"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def new_fulfillment() -> Fulfillment:
    destination = Destination("Ada Lovelace", ("12 St James's Square",), "London", "SW1Y 4JH", "GB")
    return pick_up(uuid.uuid4(), NOW, NOW, NOW + timedelta(seconds=30), destination).fulfillment


def lock_waits(engine: Engine) -> int:
    """Backends waiting for a lock now (read in a transaction of its own: a transaction keeps what it read of
    pg_stat_activity)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar_one()


def test_a_fulfillment_is_inserted_once_and_a_racing_writer_gets_the_stored_one(postgres):
    engine = make_engine(postgres.create_database("absent"))
    upgrade_to_head(engine, MIGRATIONS)
    first = new_fulfillment()
    other = dataclasses.replace(first, status=Status.Cancelled)  # the same order, written differently

    with engine.begin() as conn:
        assert store.insert_if_absent(conn, first) is None
    with engine.begin() as conn:
        assert store.insert_if_absent(conn, other) == first
        assert store.get(conn, first.order_id) == first

    racing = new_fulfillment()
    with engine.connect() as holder, ThreadPoolExecutor(max_workers=1) as pool:
        holder.begin()
        assert store.insert_if_absent(holder, racing) is None  # not committed yet

        def insert_again() -> Fulfillment | None:
            with engine.begin() as conn:
                return store.insert_if_absent(conn, dataclasses.replace(racing, status=Status.Cancelled))

        second = pool.submit(insert_again)
        wait_until(lambda: lock_waits(engine), timeout=30, message="the second insert waits for the first transaction")
        holder.commit()
        assert second.result(timeout=30) == racing
    engine.dispose()


def test_a_repeated_shipment_request_returns_the_first_and_is_counted_on_postgres(postgres):
    engine = make_engine(postgres.create_database("ledger"))
    shipping.ledger_metadata.create_all(engine)
    candidate = {
        "idempotency_key": "order-1",
        "tracking_number": "SHIP-AAAAAAAAAAAA",
        "carrier": shipping.CARRIER,
        "estimated_delivery": time.time() + 86_400,
        "created_at": time.time(),
        "requests": 1,
    }
    with engine.begin() as conn:
        assert shipping._record(conn, candidate) == candidate
    with engine.begin() as conn:
        again = shipping._record(conn, {**candidate, "tracking_number": "SHIP-BBBBBBBBBBBB"})
    assert again["tracking_number"] == "SHIP-AAAAAAAAAAAA"
    with engine.connect() as conn:
        rows = conn.execute(select(shipping.shipments.c.tracking_number, shipping.shipments.c.requests)).all()
    assert [tuple(row) for row in rows] == [("SHIP-AAAAAAAAAAAA", 2)]
    engine.dispose()
