"""What the disk scenarios read off a run: a service's log records in a window, and how long health said what."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chaos.run import StatusTimeline, log_records


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) + f",{int(epoch % 1 * 1000):03d}"


def test_log_records_carry_their_traceback_and_time(tmp_path: Path) -> None:
    t0 = 1_800_000_000.25
    log = tmp_path / "order-service.log"
    log.write_text(
        "uvicorn banner before any record\n"
        f"{_stamp(t0)} INFO order_service: started\n"
        f"{_stamp(t0 + 2)} ERROR httpapi.error_boundary: storage unavailable for POST /api/orders\n"
        "Traceback (most recent call last):\n"
        "sqlite3.OperationalError: database or disk is full\n"
        f"{_stamp(t0 + 3)} WARNING outbox.relay: outbox rows wait\n"
    )
    records = list(log_records(log))
    assert [round(at - t0, 3) for at, _ in records] == [0, 2, 3]
    assert "database or disk is full" in records[1][1]
    assert "disk is full" not in records[2][1]
    assert list(log_records(tmp_path / "missing.log")) == []


def test_a_timeline_counts_each_status_until_the_next_sample() -> None:
    timeline = StatusTimeline([(100.0, "ok"), (101.5, "down"), (104.0, "ok"), (105.0, "down")])
    assert timeline.seconds("ok") == pytest.approx(2.5)
    assert timeline.seconds("down", until=106.0) == pytest.approx(3.5)
    assert timeline.summary() == "ok x2, down x2"
    assert StatusTimeline().seconds("ok") == 0.0


def test_json_log_lines_are_records_with_their_time_level_and_exception(tmp_path: Path) -> None:
    log = tmp_path / "order-service.log"
    first = {"timestamp": "2027-01-15T08:00:00.250000Z", "level": "info", "event": "Started server process"}
    second = {
        "timestamp": "2027-01-15T08:00:02.250000Z",
        "level": "error",
        "logger": "httpapi.error_boundary",
        "event": "storage unavailable for POST /api/orders",
        "exception": "Traceback (most recent call last):\nsqlite3.OperationalError: database or disk is full",
    }
    log.write_text("not a record\n" + "\n".join(json.dumps(line) for line in (first, second)) + "\n")
    records = list(log_records(log))
    t0 = datetime(2027, 1, 15, 8, 0, 0, 250000, tzinfo=UTC).timestamp()
    assert [round(at - t0, 3) for at, _ in records] == [0, 2]
    assert [text.split(" ", 3)[2] for _, text in records] == ["INFO", "ERROR"]
    assert "database or disk is full" in records[1][1] and len(records[1][1].splitlines()) == 1
