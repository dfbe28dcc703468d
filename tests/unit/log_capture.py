"""The JSON lines some loggers write, formatted as the services format them (observability.logs)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import structlog

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


class OwnLogger:
    """A logger of its own (not propagating) whose records are formatted like the services' (JSON, or plain text
    with as_json False) and kept as text; handler is the one writing them."""

    def __init__(self, as_json: bool = True, service: str | None = "order-service") -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(log_formatter(as_json, service))
        self.logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex[:8]}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    @property
    def text(self) -> str:
        """Everything written so far."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, parsed (JSON only)."""
        return [json.loads(line) for line in self.text.splitlines()]


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Undo what observability.logs.configure_logging changes, on leaving: the root logger's handlers and level,
    threading.excepthook, the capture of warnings, structlog's configuration and the httpx loggers' levels."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, threading.excepthook
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    try:
        yield
    finally:
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
