"""A database error logged by the services names the statement, never the customer data it carried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table
from sqlalchemy.exc import IntegrityError

from persistence.engine import make_engine
from persistence.group_commit import GroupCommitter
from tests.unit.log_capture import json_lines

CUSTOMER = "Ada Lovelace, 12 St James's Square"

_metadata = MetaData()
_customers = Table("customers", _metadata, Column("id", String, primary_key=True), Column("name", String))


def test_an_integrity_error_in_a_group_commit_is_logged_without_its_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'customers.db'}")
    _metadata.create_all(engine)

    def insert(conn: Connection) -> None:
        conn.execute(_customers.insert().values(id="c-1", name=CUSTOMER))

    async def main() -> list[BaseException | None]:
        committer = GroupCommitter(engine, "test-writer")
        try:
            await committer.submit(insert)
            results = await asyncio.gather(committer.submit(insert), committer.submit(insert), return_exceptions=True)
        finally:
            await committer.stop()
        return [r if isinstance(r, BaseException) else None for r in results]

    with json_lines("persistence.group_commit") as lines:
        errors = asyncio.run(main())
    assert errors and all(isinstance(error, IntegrityError) for error in errors)
    warnings = lines.at("warning")
    assert warnings and "UNIQUE constraint failed" in warnings[0]["event"]
    assert all(CUSTOMER not in str(error) for error in errors)
    assert all(CUSTOMER not in line["event"] and "c-1" not in line["event"] for line in warnings)
    assert "parameters hidden" in str(errors[0])


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_every_engine_hides_parameters(database: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}" if database == "sqlite" else "postgresql://user@127.0.0.1:1/orders"
    assert make_engine(url).hide_parameters is True  # no connection is made
