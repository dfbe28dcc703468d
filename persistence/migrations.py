"""Schema migrations with Alembic. On PostgreSQL an advisory lock serialises replicas that start together,
so exactly one of them migrates."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

_LOCK_ID = 7_455_001  # any constant shared by all replicas of a service


def upgrade_to_head(engine: Engine, script_location: Path) -> None:
    """Upgrade the database of engine to every head of the migrations in script_location (env.py, versions/).

    An alembic.ini beside them may name more version locations (`version_locations`, e.g. a shared branch the
    service's revisions depend on). Blocking; raises what Alembic raises when a revision fails (the
    transaction is rolled back then).
    """
    ini = script_location / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")
