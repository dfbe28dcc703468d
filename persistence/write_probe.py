"""Whether a database takes writes now: a write that changes nothing.

A read (``SELECT 1``) proves that a database answers, not that it can store anything: with the disk under a SQLite
database full, reads go on while every insert fails with "database or disk is full". The probe sets every row of
Alembic's version table (each service's database is migrated by Alembic: persistence.migrations) to itself and
commits. Nothing changes, yet a new row version is written: a WAL frame in SQLite, a WAL record in PostgreSQL, so
the commit needs the space and the device any other write needs.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from persistence.engine import write_transaction

_NO_OP_WRITE = "UPDATE alembic_version SET version_num = version_num"
# PostgreSQL: rows locked by a migration under way are skipped instead of waited for (a probe must not hang).
_NO_OP_WRITE_POSTGRES = (
    "UPDATE alembic_version SET version_num = version_num "
    "WHERE version_num IN (SELECT version_num FROM alembic_version FOR UPDATE SKIP LOCKED)"
)


def probe_write(engine: Engine) -> None:
    """Commit a write that changes nothing to engine's database. Blocking (it queues with the process's other
    SQLite writers). Raises what the database raises when it cannot take a write, e.g. sqlalchemy's
    OperationalError ("database or disk is full"), or ProgrammingError/OperationalError for a database that was
    never migrated (no alembic_version table)."""
    statement = _NO_OP_WRITE_POSTGRES if engine.dialect.name == "postgresql" else _NO_OP_WRITE
    with write_transaction(engine) as conn:
        conn.execute(text(statement))
