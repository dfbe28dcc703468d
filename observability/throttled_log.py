"""Logging a failure that repeats (a full disk, an unreachable database) once per interval, not per event."""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """Logs each kind of failure at most once per interval (seconds); counts the rest and reports that count
    with the next record of the kind."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def error(self, kind: str, message: str, exc: BaseException) -> bool:
        """Log message at ERROR with exc's traceback unless kind was logged within the interval; True if logged."""
        return self._log(logging.ERROR, kind, message, exc, traceback=True)

    def warning(self, kind: str, message: str, exc: BaseException) -> bool:
        """Log message at WARNING with exc in one line (no traceback) unless kind was logged within the interval;
        True if logged."""
        return self._log(logging.WARNING, kind, message, exc, traceback=False)

    def _log(self, level: int, kind: str, message: str, exc: BaseException, traceback: bool) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self._interval) < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        repeats = f" ({suppressed} more since the last report)" if suppressed else ""
        if traceback:
            self._logger.log(level, "%s%s", message, repeats, exc_info=exc)
        else:
            self._logger.log(level, "%s: %s: %s%s", message, type(exc).__name__, exc, repeats)
        return True
