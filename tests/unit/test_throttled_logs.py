"""A failure that lasts (a full disk under the database) is logged once per minute by every part that meets it,
not once per request, batch or retry; the repeats are counted in the next report."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from messaging.consumer.dispatch import BatchDispatcher, KeyOrderedDispatcher
from observability.throttled_log import ThrottledLog
from persistence.engine import make_engine
from persistence.group_commit import GroupCommitter
from tests.unit.test_consumer_dispatch import decoded

DISK_FULL = OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_a_warning_is_one_line_once_per_interval_and_counts_the_repeats(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("test.throttled"), interval=0.0)
    once = ThrottledLog(logging.getLogger("test.throttled"), interval=60.0)
    with caplog.at_level(logging.WARNING):
        assert [once.warning("disk", "writing failed", DISK_FULL) for _ in range(3)] == [True, False, False]
        assert throttled.warning("disk", "writing failed", DISK_FULL)
    first = _records(caplog, "writing failed")[0]
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert "OperationalError" in first.getMessage() and "database or disk is full" in first.getMessage()


def test_group_commit_logs_a_lasting_failure_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")

    def fails(_conn: object) -> None:
        raise DISK_FULL

    async def scenario() -> None:
        committer = GroupCommitter(engine, "test")
        for _ in range(20):
            with pytest.raises(OperationalError):
                await asyncio.gather(committer.submit(fails), committer.submit(fails))
        await committer.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    engine.dispose()
    assert len(_records(caplog, "group commit of")) == 1


def test_dispatchers_log_a_handler_that_keeps_failing_once(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        left = {"keyed": 4, "batch": 4}

        async def handle(_event: object) -> None:
            if left["keyed"]:
                left["keyed"] -= 1
                raise DISK_FULL

        def handle_batch(_events: list[object]) -> None:
            if left["batch"]:
                left["batch"] -= 1
                raise DISK_FULL

        done: list[int] = []
        keyed = KeyOrderedDispatcher(handle, key_of=str)
        batch = BatchDispatcher(handle_batch)
        keyed.dispatch([decoded(0, "a")], lambda m: done.append(m.offset()))
        batch.dispatch([decoded(1, "b")], lambda m: done.append(m.offset()))
        await asyncio.wait(keyed.running() | batch.running())
        assert sorted(done) == [0, 1] and left == {"keyed": 0, "batch": 0}

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert len(_records(caplog, "failed, retrying")) == 2  # one per dispatcher, for four failures each
