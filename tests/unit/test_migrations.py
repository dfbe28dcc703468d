"""The Alembic migrations build exactly the schema the code uses, on a fresh database and idempotently."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fulfillment_service import store as fulfillment_store
from order_service import store as order_store
from persistence.engine import make_engine
from persistence.migrations import upgrade_to_head

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("service", "metadata"),
    [("order_service", order_store.metadata), ("fulfillment_service", fulfillment_store.metadata)],
)
def test_migrations_match_the_models(tmp_path, service, metadata):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade_to_head(engine, ROOT / service / "migrations")
    upgrade_to_head(engine, ROOT / service / "migrations")  # a restart migrates nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
