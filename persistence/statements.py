"""Statements built once and executed many times, on SQLite and PostgreSQL alike.

A statement made per call costs SQLAlchemy more than running it: the construct, its cache key and the adaptation
of the cached compiled form to the new object. Built once (with `bindparam`s for the values), it is compiled once
per engine and every execution only binds its parameters (SQLAlchemy's "SQL compilation caching"). Where the SQL
differs between the two databases (an insert that skips a row whose key exists), both forms are built up front and
picked by the connection's dialect.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

# The databases the services run on (persistence.engine).
_DIALECTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class InsertIfAbsent:
    """`INSERT ... ON CONFLICT (key columns) DO NOTHING` into table, for each supported dialect: the row is
    written unless one with the same key columns exists already, which is left as it is.

    Executed with a single row's parameters, its result's rowcount is 1 when the row was written and 0 when it
    was skipped (SQLite's and PostgreSQL's documented behaviour of DO NOTHING). On PostgreSQL a conflicting row
    inserted by a transaction still under way is waited for, not skipped past (a unique index check), so no
    IntegrityError arises from a concurrent insert of the same key. A conflict on another unique constraint
    still raises sqlalchemy's IntegrityError.
    """

    def __init__(self, table: Table, *key: Column[Any]) -> None:
        # preserve_rowcount: SQLAlchemy reads the rowcount of an INSERT only when asked to (psycopg's cursor is
        # closed by the time the result is returned, and its rowcount then reads -1).
        self._statements = {
            name: make(table).on_conflict_do_nothing(index_elements=list(key)).execution_options(preserve_rowcount=True)
            for name, make in _DIALECTS.items()
        }

    def on(self, conn: Connection) -> Insert:
        """The statement for conn's database. Raises ValueError for a database other than SQLite or PostgreSQL."""
        try:
            return self._statements[conn.dialect.name]
        except KeyError:
            raise ValueError(f"no insert-if-absent statement for the {conn.dialect.name} dialect") from None
