"""The shared outbox branch upgrades a PostgreSQL database at the released head as it does SQLite."""

import pytest

from fulfillment_service import store as fulfillment_store
from order_service import store as order_store
from persistence.engine import make_engine
from tests.unit.test_migrations import migrations_of, upgrade_from_released_head

pytestmark = pytest.mark.integration


def test_databases_at_the_released_head_upgrade_cleanly_on_postgres(postgres):
    for name, migrate, metadata in [
        ("orders", migrations_of("order_service"), order_store.metadata),
        ("fulfillment", migrations_of("fulfillment_service"), fulfillment_store.metadata),
    ]:
        engine = make_engine(postgres.create_database(name))
        upgrade_from_released_head(engine, migrate, metadata)
        engine.dispose()
