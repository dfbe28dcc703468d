"""The local dead-letter spool: a table in the service's own database for dead-letter copies that the
dead-letter topic refused for good (it cannot be created, writing to it is not authorised, the copy is
refused as invalid or too large even truncated), so the consumer can move on without losing them.

A service adds the table to its own metadata (so its store and Alembic's comparison see it); the table itself is
created by the shared `dead_letter_spool` migration branch (messaging/dead_letter_spool_migrations/).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    tuple_,
)

from messaging.dead_letter_copy import DeadLetterRecord

log = logging.getLogger(__name__)

TABLE_NAME = "dead_letter_spool"


def dead_letter_spool_table(metadata: MetaData) -> Table:
    """The `dead_letter_spool` table, defined in metadata.

    Columns: id (insertion order), dead_letter_topic (where the copy was meant to go), source_topic,
    source_partition, source_offset (the original's coordinates, unique together: a record read again is
    spooled once), record_key, record_value (the copy's bytes, value cut as in the topic), headers (JSON list
    of [name, text] pairs, the dead-letter headers), reason (why the topic refused it), spooled_at (epoch s).
    """
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("dead_letter_topic", String(255), nullable=False),
        Column("source_topic", String(255), nullable=False),
        Column("source_partition", Integer, nullable=False),
        Column("source_offset", BigInteger, nullable=False),
        Column("record_key", LargeBinary, nullable=True),
        Column("record_value", LargeBinary, nullable=True),
        Column("headers", Text, nullable=False),
        Column("reason", Text, nullable=False),
        Column("spooled_at", Float, nullable=False),
        UniqueConstraint("source_topic", "source_partition", "source_offset", name="uq_dead_letter_spool_source"),
    )


@dataclass(frozen=True)
class SpooledCopy:
    """A spooled dead-letter copy: its row id, the dead-letter topic it was meant for, the copy's key and value
    bytes, its dead-letter headers as (name, bytes) pairs, and why the topic refused it."""

    spool_id: int
    dead_letter_topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason: str


class DeadLetterSpool:
    """Keeps dead-letter copies in table on engine (the service's own database): the consumers add and count
    them, the repair tool reads and removes them."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._table = table

    def add(self, dead_letter_topic: str, records: Sequence[tuple[DeadLetterRecord, str]]) -> int:
        """Store (copy, reason) records meant for dead_letter_topic in one transaction; a copy whose source
        coordinates are already spooled is skipped. Blocking. Returns how many rows were added; raises
        SQLAlchemy's errors when the database fails (nothing is stored then)."""
        if not records:
            return 0
        table = self._table
        coordinates = [(r.source_topic, r.source_partition, r.source_offset) for r, _ in records]
        with self._engine.begin() as conn:
            present = set(
                conn.execute(
                    select(table.c.source_topic, table.c.source_partition, table.c.source_offset).where(
                        tuple_(table.c.source_topic, table.c.source_partition, table.c.source_offset).in_(coordinates)
                    )
                ).all()
            )
            rows = []
            for (record, reason), where in zip(records, coordinates, strict=True):
                if where in present:
                    continue
                present.add(where)
                rows.append(
                    {
                        "dead_letter_topic": dead_letter_topic,
                        "source_topic": record.source_topic,
                        "source_partition": record.source_partition,
                        "source_offset": record.source_offset,
                        "record_key": record.key,
                        "record_value": record.value,
                        "headers": json.dumps([[name, value.decode()] for name, value in record.headers]),
                        "reason": reason,
                        "spooled_at": time.time(),
                    }
                )
            if rows:
                conn.execute(insert(table), rows)
        return len(rows)

    def count(self) -> int:
        """How many records the spool holds. Blocking; raises SQLAlchemy's errors when the database fails."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._table)).scalar_one())

    def copies(self) -> list[SpooledCopy]:
        """Every spooled copy, oldest first. Blocking; raises SQLAlchemy's errors when the database or the table
        is missing."""
        table = self._table
        with self._engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.id)).mappings().all()
        return [
            SpooledCopy(
                spool_id=int(row["id"]),
                dead_letter_topic=row["dead_letter_topic"],
                key=row["record_key"],
                value=row["record_value"],
                headers=tuple((name, text.encode()) for name, text in json.loads(row["headers"])),
                reason=row["reason"],
            )
            for row in rows
        ]

    def remove(self, spool_id: int) -> None:
        """Delete the row spool_id in its own transaction (nothing when it is gone already). Blocking."""
        with self._engine.begin() as conn:
            conn.execute(delete(self._table).where(self._table.c.id == spool_id))
