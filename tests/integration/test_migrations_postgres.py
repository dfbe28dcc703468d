"""The shared outbox branch upgrades a PostgreSQL database at the released head as it does SQLite."""

import pytest

from fulfillment_service import bootstrap as fulfillment_bootstrap
from fulfillment_service import store as fulfillment_store
from order_service import bootstrap as order_bootstrap
from order_service import store as order_store
from persistence.engine import make_engine
from tests.unit.test_migrations import upgrade_from_released_head

pytestmark = pytest.mark.integration


def test_databases_at_the_released_head_upgrade_cleanly_on_postgres(postgres):
    for name, service, metadata in [
        ("orders", order_bootstrap, order_store.metadata),
        ("fulfillment", fulfillment_bootstrap, fulfillment_store.metadata),
    ]:
        engine = make_engine(postgres.create_database(name))
        fresh = make_engine(postgres.create_database(f"{name}_fresh"))
        upgrade_from_released_head(engine, fresh, service, metadata)
        engine.dispose()
        fresh.dispose()
