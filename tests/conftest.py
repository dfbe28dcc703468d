"""Session-wide real Kafka broker and Schema Registry on free ports (beside any `make run`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.system import System, running_system
from infra.ports import free_port
from infra.postgres import Postgres
from infra.stack import LocalStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.ephemeral(tmp_path_factory.mktemp("stack")) as local:
        yield local


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack of the test's own, for tests that stop or pause the broker or registry."""
    with LocalStack.ephemeral(tmp_path / "stack") as local:
        yield local


@pytest.fixture
def system(stack, tmp_path: Path) -> Iterator[System]:
    with running_system(stack, tmp_path) as running:
        yield running


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A throwaway PostgreSQL server on a free port (installed from Debian's packages if missing)."""
    server = Postgres(tmp_path / "pg", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
