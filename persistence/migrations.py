"""Schema migrations with Alembic, run at start-up. On PostgreSQL an advisory lock serialises replicas
that start together, so exactly one of them migrates."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

_LOCK_ID = 7_455_001  # any constant shared by all replicas of a service


def upgrade_to_head(engine: Engine, script_location: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
