"""The Alembic migrations build exactly the schema the code uses: on a fresh database, idempotently, and from
a database at the head released before the outbox became a shared branch (and before the dead-letter spool)."""

from pathlib import Path
from types import ModuleType

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
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
RELEASES = [
    pytest.param(order_bootstrap, order_store.metadata, id="order_service"),
    pytest.param(fulfillment_bootstrap, fulfillment_store.metadata, id="fulfillment_service"),
]
# The head both services' migrations had when each carried its own outbox revisions (0001 created the outbox
# table, 0002 added claimed_by), stamped then as this one revision alone.
RELEASED_HEAD = "0002"


def schema_differences(engine: Engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


@pytest.mark.parametrize(("migrate", "metadata"), SERVICES)
def test_migrations_match_the_models(tmp_path, migrate, metadata):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    migrate(engine)
    migrate(engine)  # a restart migrates nothing
    assert schema_differences(engine, metadata) == []


def released_database(engine: Engine, migrations: Path) -> None:
    """The database as the released head left it: the migrations up to RELEASED_HEAD (whose outbox
    revisions were its own then), stamped with that one revision."""
    config = Config(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, RELEASED_HEAD)
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": RELEASED_HEAD})


def heads(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(v for (v,) in conn.execute(text("SELECT version_num FROM alembic_version")))


def upgrade_from_released_head(engine: Engine, fresh: Engine, service: ModuleType, metadata: MetaData) -> None:
    """A database (engine) as the released migrations left it, a claimed outbox row in it, upgrades to today's
    head without losing its rows, ends at the same heads and schema as a fresh database (fresh, empty before),
    and a second start changes nothing."""
    service.migrate(fresh)
    released_database(engine, service.MIGRATIONS)
    outbox = metadata.tables["outbox"]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox (topic, key, event_type, payload, created_at, claimed_until, claimed_by) "
                "VALUES ('t', 'k', 'E', '{}', 1.0, 2.0, 'h:1:1')"
            )
        )
    for _ in range(2):
        service.migrate(engine)
        assert heads(engine) == heads(fresh)
        with engine.connect() as conn:
            claimed = conn.execute(select(outbox.c.key, outbox.c.claimed_by)).all()
        assert [tuple(row) for row in claimed] == [("k", "h:1:1")]
        assert schema_differences(engine, metadata) == []


@pytest.mark.parametrize(("service", "metadata"), RELEASES)
def test_a_database_at_the_released_head_upgrades_cleanly(tmp_path, service, metadata):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade_from_released_head(engine, make_engine(f"sqlite:///{tmp_path}/fresh.sqlite"), service, metadata)
