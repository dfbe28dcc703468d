"""A service's output in `make run`'s terminal, each line prefixed by the service's name as compose shows it:

    order-service        | 2025-01-01T12:00:00.000000Z [info     ] Application startup complete.  [uvicorn.error] ...
    fulfillment-service  | 2025-01-01T12:00:01.000000Z [info     ] Application startup complete.  [uvicorn.error] ...

Names are padded to one width (the longest name's, plus one), so the `|` of every service lines up. The log file
still gets every byte the process wrote, unchanged; the terminal gets whole lines only, one writer at a time, so
lines of two services never interleave mid-line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

SEPARATOR = " | "

# A line of output, without its line end, to show somewhere.
LineSink = Callable[[str], None]


def prefixes(names: Sequence[str]) -> dict[str, str]:
    """Each name's prefix, padded to the longest name's width plus one and followed by SEPARATOR, so every
    prefix has the same length. ValueError for no names."""
    if not names:
        raise ValueError("no names to prefix")
    width = max(len(name) for name in names) + 1
    return {name: f"{name:<{width}}{SEPARATOR}" for name in names}


class Terminal:
    """A text stream (sys.stdout) shared by the output of several services, one prefix per name (see `prefixes`).

    Each line is written and flushed under one lock, so lines stay whole whichever thread writes them.
    """

    def __init__(self, stream: TextIO, names: Sequence[str]) -> None:
        self._stream = stream
        self._prefixes = prefixes(names)
        self._lock = threading.Lock()

    def sink(self, name: str) -> LineSink:
        """Where name's lines go: written to the stream with name's prefix. KeyError for a name not given."""
        prefix = self._prefixes[name]

        def write(line: str) -> None:
            with self._lock:
                self._stream.write(f"{prefix}{line}\n")
                self._stream.flush()

        return write


def pump_lines(source: BinaryIO, log_file: Path, sink: LineSink) -> threading.Thread:
    """Start a daemon thread copying source (a child process's stdout pipe) line by line until its end: each line
    is appended to log_file as it came (bytes unchanged, flushed at once, so the file's end is always the latest
    output) and handed to sink decoded as UTF-8 (undecodable bytes replaced) without its line end. A last line
    without a line end is passed on too. A sink that fails (the terminal is gone: OSError, ValueError for a closed
    stream) gets no further lines, while the file keeps getting them and the pipe keeps being drained, so the
    process never blocks on a full pipe. The thread closes source when done; join it to wait for the last line.
    """

    def pump() -> None:
        echo = True
        with source, log_file.open("ab") as log:
            for raw in iter(source.readline, b""):
                log.write(raw)
                log.flush()
                if echo:
                    try:
                        sink(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                    except (OSError, ValueError):
                        echo = False

    thread = threading.Thread(target=pump, name=f"output of {log_file.name}", daemon=True)
    thread.start()
    return thread
