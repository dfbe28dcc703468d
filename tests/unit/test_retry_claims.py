"""Due retries are claimed once, even by several instances sharing one database."""

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from fulfillment_service import store
from persistence.engine import make_engine, write_transaction
from persistence.migrations import upgrade_to_head

LEASE = timedelta(seconds=60)
MIGRATIONS = Path(__file__).resolve().parents[2] / "fulfillment_service" / "migrations"


def due_orders(engine, count: int) -> list[uuid.UUID]:
    now = time.time()
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        {
            "order_id": str(i),
            "status": "Pending",
            "attempts": 1,
            "next_attempt_at": now - 1,
            "picked_up_at": now,
            "updated_at": now,
            "sequence": 0,
        }
        for i in ids
    ]
    with engine.begin() as conn:
        conn.execute(insert(store.fulfillments), rows)
    return ids


def assert_each_due_order_claimed_once(url: str) -> None:
    """Two instances (engines with their own connections) claim 600 due orders concurrently."""
    upgrade_to_head(make_engine(url), MIGRATIONS)
    ids = due_orders(make_engine(url), 600)
    instances = [make_engine(url) for _ in range(2)]
    claimed: list[uuid.UUID] = []
    guard = threading.Lock()

    def claim_until_none(engine) -> None:
        while True:
            with write_transaction(engine) as conn:
                now = datetime.now(UTC)
                rows = store.claim_due_for_retry(conn, now, now + LEASE, 7, busy=set())
            if not rows:
                return
            with guard:
                claimed.extend(r.order_id for r in rows)

    threads = [threading.Thread(target=claim_until_none, args=(engine,)) for engine in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    twice = [order for order, n in Counter(claimed).items() if n > 1]
    assert twice == []
    assert sorted(claimed) == sorted(ids)


def test_two_instances_never_claim_the_same_order(tmp_path):
    assert_each_due_order_claimed_once(f"sqlite:///{tmp_path}/fulfillment.db")


def test_claim_skips_busy_orders_and_leases_the_rest(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/fulfillment.db")
    upgrade_to_head(engine, MIGRATIONS)
    first, second = due_orders(engine, 2)
    with write_transaction(engine) as conn:
        now = datetime.now(UTC)
        rows = store.claim_due_for_retry(conn, now, now + LEASE, 10, busy={first})
    assert [r.order_id for r in rows] == [second]
    assert rows[0].next_attempt_at > now + LEASE - timedelta(seconds=1)
    with write_transaction(engine) as conn:  # the leased order is not due; the no longer busy one is
        now = datetime.now(UTC)
        later = [r.order_id for r in store.claim_due_for_retry(conn, now, now + LEASE, 10, busy=set())]
    assert later == [first]
