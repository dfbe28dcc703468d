"""Session-wide real Kafka broker and Schema Registry on free ports (beside any `make run`)."""

from __future__ import annotations

import shutil
import tempfile
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
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server on a free port (installed from Debian's packages if missing).

    Its files live in a directory of their own under the system's temporary directory, not under pytest's: the
    server runs as the `postgres` user, and pytest makes its own base directory private to this user again (mode
    0700) whenever another pytest process starts, which would lock the running server out of its files."""
    directory = Path(tempfile.mkdtemp(prefix="orderproc-pg-"))
    server = Postgres(directory / "pg", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
