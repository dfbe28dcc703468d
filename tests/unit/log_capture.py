"""The JSON lines some loggers write, formatted as the services format them (observability.logs)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from observability.logs import log_formatter


class JsonLines:
    """What the captured loggers wrote, one dict per line."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def all(self) -> list[dict[str, Any]]:
        """Every line, parsed."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def at(self, level: str) -> list[dict[str, Any]]:
        """The lines at level ("info", "warning"...)."""
        return [line for line in self.all() if line["level"] == level]


@contextlib.contextmanager
def json_lines(*loggers: str, level: int = logging.DEBUG) -> Iterator[JsonLines]:
    """Capture the lines of loggers (by name) at level and above while inside."""
    lines = JsonLines()
    handler = logging.StreamHandler(lines.stream)
    handler.setFormatter(log_formatter(True, "test-service"))
    saved = []
    for name in loggers:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(level)
        logger.addHandler(handler)
    try:
        yield lines
    finally:
        for logger, previous in saved:
            logger.removeHandler(handler)
            logger.setLevel(previous)
