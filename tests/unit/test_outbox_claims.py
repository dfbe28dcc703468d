"""Outbox claims name their owner: a restarting relay frees the claims of dead owners, never a live one's."""

import subprocess
import sys

from sqlalchemy import MetaData, insert, select

from messaging.outbox import OWNER, OutboxRelay, outbox_table, owner_is_gone
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
    assert not owner_is_gone(OWNER)
    assert owner_is_gone(dead_owner())
    assert not owner_is_gone("another-host:1:1.00")  # cannot tell: wait for the lease
    assert not owner_is_gone("not an owner")


def test_start_frees_dead_owners_claims_and_keeps_live_ones(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/outbox.sqlite")
    metadata = MetaData()
    table = outbox_table(metadata)
    metadata.create_all(engine)
    gone = dead_owner()
    claims = {1: OWNER, 2: gone, 3: None}
    with engine.begin() as conn:
        for row_id, owner in claims.items():
            conn.execute(
                insert(table).values(
                    id=row_id,
                    topic="t",
                    key="k",
                    event_type="E",
                    payload="{}",
                    created_at=0.0,
                    claimed_until=None if owner is None else 9e12,
                    claimed_by=owner,
                )
            )
    OutboxRelay(engine, table, producer=None, codecs={})._release_claims_of_dead_owners()
    with engine.connect() as conn:
        rows = {r.id: (r.claimed_by, r.claimed_until) for r in conn.execute(select(table))}
    assert rows == {1: (OWNER, 9e12), 2: (None, None), 3: (None, None)}
