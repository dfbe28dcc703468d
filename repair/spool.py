"""A service's local dead-letter spool (messaging.dead_letter_spool: the copies its dead-letter topic refused for
good) read as dead-letter copies, and sent on to their dead-letter topic once it takes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Engine, MetaData

from messaging.dead_letter_spool import DeadLetterSpool, dead_letter_spool_table
from repair.dead_letters import FAILED, REPLAYED, WOULD_REPLAY, DeadLetter, Outcome, Outgoing, ReplayReport, Sender


class Spool(Protocol):
    """The spool table of one service's database."""

    def copies(self) -> list[DeadLetter]:
        """Every spooled copy, oldest first."""
        ...

    def remove(self, spool_id: int) -> None:
        """Delete the row spool_id (nothing when it is gone already)."""
        ...


class SpoolTable:
    """The `dead_letter_spool` table on engine (a service's own database: SQLite or PostgreSQL), read through
    the service's own DeadLetterSpool."""

    def __init__(self, engine: Engine) -> None:
        self._spool = DeadLetterSpool(engine, dead_letter_spool_table(MetaData()))

    def copies(self) -> list[DeadLetter]:
        """Every spooled copy as a DeadLetter (topic: the dead-letter topic it was meant for), by row id.
        Raises SQLAlchemy's errors when the database or the table is missing."""
        return [
            DeadLetter(
                topic=copy.dead_letter_topic,
                key=copy.key,
                value=copy.value,
                headers=copy.headers,
                spool_id=copy.spool_id,
                spool_reason=copy.reason,
            )
            for copy in self._spool.copies()
        ]

    def remove(self, spool_id: int) -> None:
        """Delete the row spool_id in its own transaction."""
        self._spool.remove(spool_id)


def replay_spool(copies: Sequence[DeadLetter], spool: Spool, sender: Sender | None) -> ReplayReport:
    """Publish each spooled copy (key, value and dead-letter headers as spooled) to its dead-letter topic, and
    delete its row only once the broker confirmed it; sender None is a dry run (nothing produced or deleted).

    A copy the broker refuses (the topic still missing or not writable) keeps its row and is failed; so is one
    delivered whose row cannot be deleted (the next replay sends it again: a second copy in the dead-letter
    topic, which a replay from there writes once per original).
    """
    report = ReplayReport(dry_run=sender is None)
    if sender is None:
        report.outcomes = [Outcome(copy, WOULD_REPLAY, f"-> {copy.topic}, then delete the row") for copy in copies]
        return report
    deliveries = sender.send([Outgoing(copy.topic, copy.key, copy.value, copy.headers) for copy in copies])
    for copy, delivery in zip(copies, deliveries, strict=True):
        if delivery.error is not None:
            report.outcomes.append(Outcome(copy, FAILED, f"-> {copy.topic}: {delivery.error}; row kept"))
            continue
        where = f"{copy.topic}[{delivery.partition}]@{delivery.offset}"
        assert copy.spool_id is not None
        try:
            spool.remove(copy.spool_id)
        except Exception as exc:
            report.outcomes.append(Outcome(copy, FAILED, f"-> {where}, but the row was not deleted: {exc}"[:300]))
            continue
        report.outcomes.append(Outcome(copy, REPLAYED, f"-> {where}, row deleted"))
    return report
