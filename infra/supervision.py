"""Watching processes that should keep running: the one supervise loop, and the end of a process's log."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

_LOG_TAIL_LINES = 30


class Supervised(Protocol):
    """A process the supervisor watches: a JVM of the stack or a service."""

    @property
    def name(self) -> str:
        """What the supervisor calls it in a report ("kafka", "order-service", ...)."""
        ...

    @property
    def running(self) -> bool:
        """Whether the process is alive now."""
        ...

    @property
    def log_file(self) -> Path:
        """The file its stdout and stderr go to; its end is printed when the process dies."""
        ...


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after timeout seconds. Nothing for None or one that has ended."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines of a log file ("" when it cannot be read).

    Logs are appended across runs, so only the last 64 KiB of the file are read.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "".join(deque(text.splitlines(keepends=True), maxlen=lines))


def supervise(processes: Sequence[Supervised], stop: threading.Event, interval: float = 1.0) -> int:
    """Block until stop is set (returns 0) or a process exits on its own (returns 1).

    Every process found dead is reported on stderr with the end of its log; checks run every interval
    seconds. Stopping the processes is the caller's job.
    """
    while not stop.wait(timeout=interval):
        dead = [process for process in processes if not process.running]
        for process in dead:
            print(
                f"error: {process.name} exited unexpectedly; last lines of {process.log_file}:\n"
                f"{log_tail(process.log_file)}",
                file=sys.stderr,
            )
        if dead:
            return 1
    return 0
