"""The Alembic migrations build exactly the schema the code uses: on a fresh database, idempotently, and from
a database at the head released before the outbox became a shared branch."""

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, select, text

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
# table, 0002 added claimed_by); their schema then was exactly today's, which the comparison below proves.
RELEASED_HEAD = "0002"
# Columns the outbox branch added after that release (outbox_0003: failures and parking), with their index.
ADDED_SINCE_RELEASE = ("attempts", "first_failed_at", "failure_reason", "parked_at")
ADDED_INDEXES = ("ix_outbox_parked_at",)
# The shared branch's head: the released head depends on outbox_0002, so the branch's newer revisions are a
# head of their own in alembic_version.
OUTBOX_HEAD = "outbox_0003"


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
    metadata.create_all(engine)
    with engine.begin() as conn:
        for index in ADDED_INDEXES:
            conn.execute(text(f"DROP INDEX {index}"))
        for column in ADDED_SINCE_RELEASE:
            conn.execute(text(f"ALTER TABLE outbox DROP COLUMN {column}"))
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": RELEASED_HEAD})
        outbox = metadata.tables["outbox"]
        conn.execute(
            text(
                "INSERT INTO outbox (topic, key, event_type, payload, created_at, claimed_until, claimed_by)"
                " VALUES ('t', 'k', 'E', '{}', 1.0, 2.0, 'h:1:1')"
            )
        )
    for _ in range(2):
        migrate(engine)
        with engine.connect() as conn:
            versions = {v for (v,) in conn.execute(text("SELECT version_num FROM alembic_version"))}
            assert versions == {RELEASED_HEAD, OUTBOX_HEAD}
            claimed = conn.execute(
                select(outbox.c.key, outbox.c.claimed_by, outbox.c.attempts, outbox.c.parked_at)
            ).all()
        assert [tuple(row) for row in claimed] == [("k", "h:1:1", 0, None)]
        assert schema_differences(engine, metadata) == []


@pytest.mark.parametrize(("migrate", "metadata"), SERVICES)
def test_a_database_at_the_released_head_upgrades_cleanly(tmp_path, migrate, metadata):
    upgrade_from_released_head(make_engine(f"sqlite:///{tmp_path}/db.sqlite"), migrate, metadata)
