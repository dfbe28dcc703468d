"""SQLAlchemy engines: SQLite in WAL mode by default, PostgreSQL when DATABASE_URL names one.

Every engine of the services is made here, and each hides statement parameters from its errors
(`hide_parameters=True`): SQLAlchemy's DBAPIError text otherwise ends in `[parameters: (...)]`, the values of the
failed statement (customer names, addresses), which would reach the log with every logged database error.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, sqlite_synchronous: str = "NORMAL") -> Engine:
    """An engine for url tuned for many short transactions from a few threads, whose errors never show statement
    parameters (see the module docstring). sqlite_synchronous: SQLite's `PRAGMA synchronous` (NORMAL, FULL)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers run beside the single writer; NORMAL sync survives a killed process
            # (the WAL is fsynced at checkpoints), which is the failure this system guards against.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True)


def is_postgres(engine: Engine) -> bool:
    """True for a PostgreSQL engine (row locks, advisory locks), False for SQLite."""
    return engine.dialect.name == "postgresql"


_WRITE_LOCKS: dict[int, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite, writers of this process queue on a lock first: SQLite's own
    busy handler makes a waiting writer sleep in growing steps, which under load costs far more than
    waiting in line. PostgreSQL handles concurrent writers itself."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(id(engine), threading.Lock())
    with lock, engine.begin() as conn:
        yield conn
