"""The Alembic migrations build exactly the schema the code uses: on a fresh database, idempotently, and from
a database at the head released before the outbox became a shared branch (and before the dead-letter spool)."""

import uuid
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
            claimed = conn.execute(
                select(outbox.c.key, outbox.c.claimed_by, outbox.c.attempts, outbox.c.parked_at)
            ).all()
        assert [tuple(row) for row in claimed] == [("k", "h:1:1", 0, None)]
        assert schema_differences(engine, metadata) == []


@pytest.mark.parametrize(("service", "metadata"), RELEASES)
def test_a_database_at_the_released_head_upgrades_cleanly(tmp_path, service, metadata):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade_from_released_head(engine, make_engine(f"sqlite:///{tmp_path}/fresh.sqlite"), service, metadata)


def upgrade_to(engine: Engine, migrations: Path, revision: str) -> None:
    config = Config(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def test_orders_and_fulfillments_stored_before_shipping_addresses_read_without_one(tmp_path):
    # The revisions before the shipping address: 0004 of the Order Service, 0003 of the Fulfillment Service.
    orders = make_engine(f"sqlite:///{tmp_path}/orders.sqlite")
    upgrade_to(orders, order_bootstrap.MIGRATIONS, "0004")
    fulfillments = make_engine(f"sqlite:///{tmp_path}/fulfillment.sqlite")
    upgrade_to(fulfillments, fulfillment_bootstrap.MIGRATIONS, "0003")
    order_id = "0b6e2a4c-3f0e-4f3a-9d7e-5a1c2b3d4e5f"
    with orders.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO orders (order_id, customer_id, customer_name, items, total_amount, status, created_at, "
                "updated_at, fulfillment_seq) VALUES (:id, 'c-1', 'Ada', :items, '1.00', 'Pending', 1, 1, -1)"
            ),
            {"id": order_id, "items": '[{"productId":"p-1","productName":"Lamp","quantity":1,"price":"1.00"}]'},
        )
    with fulfillments.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO fulfillments (order_id, status, attempts, sequence, picked_up_at, updated_at, "
                "next_attempt_at) VALUES (:id, 'Pending', 0, 0, 1.0, 1.0, 2.0)"
            ),
            {"id": order_id},
        )

    order_bootstrap.migrate(orders)
    fulfillment_bootstrap.migrate(fulfillments)

    with orders.connect() as conn:
        order = order_store.get_order(conn, uuid.UUID(order_id))
    with fulfillments.connect() as conn:
        fulfillment = fulfillment_store.get(conn, uuid.UUID(order_id))
    assert order is not None and order.shipping_address is None and order.customer_name == "Ada"
    assert fulfillment is not None and fulfillment.destination is None and fulfillment.next_attempt_at is not None
