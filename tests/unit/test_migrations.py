"""The Alembic migrations build exactly the schema the code uses: on a fresh database, idempotently, and from
a database at the head released before the outbox became a shared branch (and before the dead-letter spool)."""

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, insert, select, text

from fulfillment_service import bootstrap as fulfillment_bootstrap
from fulfillment_service import store as fulfillment_store
from order_service import bootstrap as order_bootstrap
from order_service import store as order_store
from persistence.engine import make_engine

SERVICES = [
    pytest.param(order_bootstrap.migrate, order_store.metadata, id="order_service"),
    pytest.param(fulfillment_bootstrap.migrate, fulfillment_store.metadata, id="fulfillment_service"),
]
# The head both services' migrations had when each carried its own outbox revisions (0001 created the outbox
# table, 0002 added claimed_by); their schema then was today's without the dead-letter spool table.
RELEASED_HEAD = "0002"
# Today's head: 0003 adds the dead-letter spool (the shared `dead_letter_spool` branch).
HEAD = "0003"


def schema_differences(engine: Engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


@pytest.mark.parametrize(("migrate", "metadata"), SERVICES)
def test_migrations_match_the_models(tmp_path, migrate, metadata):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    migrate(engine)
    migrate(engine)  # a restart migrates nothing
    assert schema_differences(engine, metadata) == []


def upgrade_from_released_head(engine: Engine, migrate: Callable[[Engine], None], metadata: MetaData) -> None:
    """A database as the released migrations left it (their schema, stamped RELEASED_HEAD, a claimed outbox
    row) upgrades to today's head without touching its tables or rows, and a second start changes nothing."""
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t.name != "dead_letter_spool"])
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": RELEASED_HEAD})
        outbox = metadata.tables["outbox"]
        conn.execute(
            insert(outbox).values(
                topic="t", key="k", event_type="E", payload="{}", created_at=1.0, claimed_until=2.0, claimed_by="h:1:1"
            )
        )
    for _ in range(2):
        migrate(engine)
        with engine.connect() as conn:
            assert [v for (v,) in conn.execute(text("SELECT version_num FROM alembic_version"))] == [HEAD]
            claimed = conn.execute(select(outbox.c.key, outbox.c.claimed_by)).all()
        assert [tuple(row) for row in claimed] == [("k", "h:1:1")]
        assert schema_differences(engine, metadata) == []


@pytest.mark.parametrize(("migrate", "metadata"), SERVICES)
def test_a_database_at_the_released_head_upgrades_cleanly(tmp_path, migrate, metadata):
    upgrade_from_released_head(make_engine(f"sqlite:///{tmp_path}/db.sqlite"), migrate, metadata)
