"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.log_capture import logging_restored


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The logging configuration as it was before the test (for tests calling configure_logging)."""
    with logging_restored():
        yield
