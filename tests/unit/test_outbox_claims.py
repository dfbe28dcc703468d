"""Outbox claims name their owner: a restarting relay frees the claims of dead owners, never a live one's; an
entry written to the outbox is claimed back as it was written."""

import subprocess
import sys

from sqlalchemy import MetaData, insert, select

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged
from outbox.claims import ClaimedRow, OutboxClaims
from outbox.ownership import current_owner, owner_is_gone
from outbox.table import OutboxEntry, add_to_outbox, outbox_table
from persistence.engine import make_engine


def dead_owner() -> str:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, socket, psutil; p = psutil.Process();"
            "print(f'{socket.gethostname()}:{p.pid}:{p.create_time():.2f}')",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = child.communicate(timeout=30)
    return out.strip()


def test_owner_is_gone_only_when_certain():
    assert not owner_is_gone(current_owner())
    assert owner_is_gone(dead_owner())
    assert not owner_is_gone("another-host:1:1.00")  # cannot tell: wait for the lease
    assert not owner_is_gone("not an owner")


def outbox(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/outbox.sqlite")
    metadata = MetaData()
    table = outbox_table(metadata)
    metadata.create_all(engine)
    return engine, table


def add_rows(engine, table, claims: dict[int, tuple[str | None, float | None]]) -> None:
    with engine.begin() as conn:
        for row_id, (owner, until) in claims.items():
            conn.execute(
                insert(table).values(
                    id=row_id,
                    topic="t",
                    key="k",
                    event_type="E",
                    payload="{}",
                    created_at=0.0,
                    claimed_until=until,
                    claimed_by=owner,
                )
            )


def rows(engine, table) -> dict[int, tuple[str | None, float | None]]:
    with engine.connect() as conn:
        return {r.id: (r.claimed_by, r.claimed_until) for r in conn.execute(select(table))}


def test_start_frees_dead_owners_claims_and_keeps_live_ones(tmp_path):
    engine, table = outbox(tmp_path)
    add_rows(engine, table, {1: (current_owner(), 9e12), 2: (dead_owner(), 9e12), 3: (None, None)})
    assert OutboxClaims(engine, table, current_owner()).release_owners(owner_is_gone) == 1
    assert rows(engine, table) == {1: (current_owner(), 9e12), 2: (None, None), 3: (None, None)}


def test_claims_take_free_and_expired_rows_in_id_order_and_never_a_leased_one(tmp_path):
    engine, table = outbox(tmp_path)
    add_rows(engine, table, {4: (None, None), 1: ("other:1:1.00", 1.0), 2: ("other:1:1.00", 9e12), 3: (None, None)})
    claims = OutboxClaims(engine, table, "me:2:2.00")
    assert [row.id for row in claims.claim(limit=10, lease_seconds=30)] == [1, 3, 4]
    assert claims.claim(limit=10, lease_seconds=30) == []  # all leased now
    claims.release([3])
    claims.delete([1])
    assert [row.id for row in claims.claim(limit=10, lease_seconds=30)] == [3]
    assert claims.backlog() == 3
    assert {row_id: owner for row_id, (owner, _) in rows(engine, table).items()} == {
        2: "other:1:1.00",
        3: "me:2:2.00",
        4: "me:2:2.00",
    }


def test_an_entry_is_claimed_back_with_its_topic_key_event_and_time(tmp_path):
    engine, table = outbox(tmp_path)
    event = FulfillmentStatusChanged(
        eventId="0b6c1a52-4a4e-4c8e-9a4f-8f0c2d1e3b5a",
        orderId="5f1e0c4a-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
        status=FulfillmentStatus.Pending,
        sequence=0,
        timestamp="2025-03-01T12:00:00Z",
    )
    entry = OutboxEntry.of("fulfillment-events", str(event.orderId), event)
    with engine.begin() as conn:
        add_to_outbox(conn, table, [entry])
        add_to_outbox(conn, table, [])  # nothing to write: no statement

    (claimed,) = OutboxClaims(engine, table, "me:2:2.00").claim(limit=10, lease_seconds=30)

    assert claimed == ClaimedRow(1, "fulfillment-events", str(event.orderId), "FulfillmentStatusChanged",
                                 event.model_dump_json(), entry.created_at)  # fmt: skip
    assert FulfillmentStatusChanged.model_validate_json(claimed.payload) == event
