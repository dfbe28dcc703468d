"""Polling with a deadline, instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(
    condition: Callable[[], Any],
    timeout: float,
    interval: float = 0.1,
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> Any:
    """condition()'s first truthy value, or None once timeout seconds have passed.

    condition is called every interval seconds (and once more at the deadline); exceptions of the types
    in ignore count as a falsy answer, any other propagates.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignore:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "") -> Any:
    """condition()'s first truthy value; raises AssertionError naming message after timeout seconds."""
    value = poll(condition, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
    return value
