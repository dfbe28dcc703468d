"""Freezing a process with its children (SIGSTOP) and letting it go on (SIGCONT), as a hung process or a long
pause of its host would: one mechanism for the stack's JVMs and the services alike."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import ClassVar


class ProcessNotRunningError(RuntimeError):
    """The process to signal was never started (or has no process id)."""


class Pausable:
    """pause(), resume() and paused() for a process started as the leader of its own process group
    (`start_new_session`), so the signal reaches the children it started too.

    The class mixing it in provides `name` and `pid` (None before the first start); not_running_error is what
    pause() and resume() raise without a pid. SIGSTOP cannot be caught: a paused process does nothing (no
    heartbeats, no answers) until resumed; a SIGTERM sent meanwhile waits for SIGCONT.
    """

    not_running_error: ClassVar[type[Exception]] = ProcessNotRunningError
    _paused: bool = False

    @property
    def pid(self) -> int | None:
        """The process id, which is also its process group id; None when not started."""
        raise NotImplementedError

    def pause(self) -> None:
        """Freeze the process group (SIGSTOP); not_running_error if not started."""
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Continue the paused process group (SIGCONT); not_running_error if not started."""
        self._signal_group(signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The process group frozen (SIGSTOP) inside the block and continued (SIGCONT) when it is left."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def _signal_group(self, sig: int) -> None:
        pid = self.pid
        if pid is None:
            raise self.not_running_error(f"{getattr(self, 'name', type(self).__name__)} is not running")
        os.killpg(pid, sig)
