"""The small filesystem the disk scenarios fill: a tmpfs that refuses a SQLite write once filled, takes it
again once the filler is gone, and is unmounted whatever happens. Needs root (mount); fails without it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from chaos.disk import small_disk


def _database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, value BLOB)")
    for _ in range(200):  # a WAL of about 1 MiB, which SQLite would reuse after a checkpoint
        conn.execute("INSERT INTO rows (value) VALUES (?)", (os.urandom(4000),))
    return conn


def test_a_filled_disk_refuses_the_next_write_and_takes_it_once_the_filler_is_gone(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", size_mib=8) as disk:
        assert os.path.ismount(disk.path)
        with contextlib.closing(_database(disk.path / "orders.db")) as conn:
            evidence = disk.fill_under(disk.path / "orders.db")
            assert disk.free_bytes() == 0, evidence
            assert "WAL truncated" in evidence
            with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
                conn.execute("INSERT INTO rows (value) VALUES (?)", (b"x" * 100,))
            disk.remove_filler()
            conn.execute("INSERT INTO rows (value) VALUES (?)", (b"x" * 100,))
            assert conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 201
    assert not os.path.ismount(tmp_path / "disk")


def test_the_disk_is_unmounted_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="scenario crashed"), small_disk(tmp_path / "disk", size_mib=1) as disk:
        disk.fill()
        raise RuntimeError("scenario crashed")
    assert not os.path.ismount(tmp_path / "disk")
