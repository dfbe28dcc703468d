"""Fixtures the unit tests share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what observability.logs.configure_logging changes in the process after the test: the root logger's
    handlers and level, the httpx loggers' levels, the thread excepthook, captured warnings and structlog."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, threading.excepthook
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    threading.excepthook = hook
    logging.captureWarnings(False)
    structlog.reset_defaults()
    for name, previous in levels.items():
        logging.getLogger(name).setLevel(previous)
