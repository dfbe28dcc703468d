"""One JVM child process: started from a command line with a readiness check, stopped, killed, paused.

The broker and the registry (``infra.broker``, ``infra.registry``) are subclasses of :class:`JavaService`;
they supply the command line, the ports and the readiness probe. Every JVM runs in a session of its
own, dies with this Python process (SIGTERM via PR_SET_PDEATHSIG, even when the parent was SIGKILLed)
and is stopped cleanly at interpreter exit.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

from mirakuru import SimpleExecutor
from mirakuru.exceptions import ProcessFinishedWithError

from infra.pausing import Pausable
from infra.ports import HOST, bind_succeeds
from infra.supervision import log_tail

log = logging.getLogger(__name__)

# Exit status of a JVM that shut down because of SIGTERM (128 + 15).
_JVM_SIGTERM_EXIT = 128 + signal.SIGTERM
_POLL_INTERVAL = 0.2


class StackError(RuntimeError):
    """A local infrastructure process could not be started or stopped."""


class PortInUseError(StackError):
    """A port the stack needs is already bound by another process."""


class JavaNotFoundError(StackError):
    """No usable ``java`` executable was found."""


def java_executable() -> str:
    """Path of the ``java`` binary: ``$JAVA_HOME/bin/java`` or the one on ``PATH``.

    Raises JavaNotFoundError when there is neither.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise JavaNotFoundError(
            "java was not found (checked $JAVA_HOME and PATH); Kafka and Apicurio need a JDK 17 or newer"
        )
    return found


# --- child processes --------------------------------------------------------------------------

_libc: Any = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - exotic libc
        _libc = None
_PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """``preexec_fn`` for the JVMs: own session, and SIGTERM when this Python process dies.

    The own session (= process group) lets stop() signal the whole group and keeps a
    terminal's Ctrl-C away from the JVMs, so the parent decides how they shut down.
    PDEATHSIG covers a parent killed with SIGKILL, where no Python cleanup can run.
    Linux ties PDEATHSIG to the thread that forked, so start services from a long-lived
    thread (the main thread in the CLI and in tests).
    """

    def setup() -> None:
        os.setsid()
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            # The parent may have died between fork and prctl.
            if os.getppid() != parent_pid:
                os._exit(1)

    return setup


class _JvmExecutor(SimpleExecutor):
    """mirakuru executor whose children also die with the Python parent."""

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs = super()._popen_kwargs
        kwargs["preexec_fn"] = _child_setup(os.getpid())
        return kwargs


_running: list[JavaService] = []
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    # Registered after mirakuru's own atexit hook (which SIGKILLs leftovers), so it runs
    # first and gives the JVMs a clean shutdown. Newest first: registry before broker.
    with _running_lock:
        services = list(reversed(_running))
    for service in services:
        try:
            service.stop()
        except Exception:  # best effort at interpreter exit
            log.exception("failed to stop %s", service.name)


class JavaService(Pausable):
    """Common lifecycle of one JVM process: start with readiness check, stop, kill, pause.

    directory holds the process's configuration, data and log; start_timeout and stop_timeout are
    seconds. Subclasses implement log_file, _ports, _prepare and _is_ready.
    """

    name: ClassVar[str] = "service"
    not_running_error: ClassVar[type[Exception]] = StackError

    def __init__(self, directory: Path, *, start_timeout: float, stop_timeout: float) -> None:
        self.directory = Path(directory).resolve()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._executor: _JvmExecutor | None = None
        self._paused = False

    # subclasses provide these
    @property
    def log_file(self) -> Path:
        """Where the process's stdout and stderr are appended."""
        raise NotImplementedError

    def _ports(self) -> dict[str, int]:
        raise NotImplementedError

    def _prepare(self, java: str) -> list[str]:
        """Write config files etc. and return the command line."""
        raise NotImplementedError

    def _is_ready(self, deadline: float) -> bool:
        raise NotImplementedError

    def _after_stop(self) -> None:
        """Release client resources tied to the running process."""

    # lifecycle
    @property
    def running(self) -> bool:
        """Whether the process is alive (paused counts as alive)."""
        return self._executor is not None and self._executor.running()

    @property
    def pid(self) -> int | None:
        """The JVM's pid (also its process group id), or None when not started."""
        process = self._executor.process if self._executor else None
        return process.pid if process else None

    def start(self) -> None:
        """Start the process and block until it is ready; no-op if already running.

        Raises PortInUseError when one of its ports is taken, JavaNotFoundError without java, and
        StackError when the process exits during start-up or is not ready within start_timeout.
        """
        if self.running:
            return
        if self._executor is not None:
            # The process died on its own since the last start; reap it before starting anew.
            self._discard_executor()
        for label, port in self._ports().items():
            if not bind_succeeds(port):
                raise PortInUseError(f"{self.name}: {label} port {port} on {HOST} is already in use by another process")
        java = java_executable()
        self.directory.mkdir(parents=True, exist_ok=True)
        command = self._prepare(java)

        # Appended, so earlier runs stay readable; the markers separate them.
        self._log_marker("starting")
        with self.log_file.open("a") as log_handle:
            executor = _JvmExecutor(
                command,
                cwd=str(self.directory),
                timeout=self.stop_timeout,  # mirakuru uses it as the grace period of stop()
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
            )
            self._executor = executor
            with _running_lock:
                _running.append(self)
            started = time.monotonic()
            try:
                executor.start()
            except BaseException:
                self._discard_executor()
                raise
        try:
            self._wait_ready(started + self.start_timeout)
        except BaseException:
            self.kill()
            raise
        log.info("%s ready after %.1fs (pid %s)", self.name, time.monotonic() - started, self.pid)

    def _wait_ready(self, deadline: float) -> None:
        assert self._executor is not None and self._executor.process is not None
        process = self._executor.process
        while True:
            code = process.poll()
            if code is not None:
                raise StackError(
                    f"{self.name} exited with status {code} during startup; "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if self._is_ready(deadline):
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{self.name} was not ready within {self.start_timeout:.0f}s; "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM to the process group, SIGKILL after ``stop_timeout``).

        Idempotent; also called at interpreter exit.
        """
        executor = self._executor
        if executor is None:
            return
        self._log_marker("stopping")
        if self._paused:
            self.resume()  # a stopped JVM would never act on SIGTERM
        try:
            executor.stop(expected_returncode=_JVM_SIGTERM_EXIT)
        except ProcessFinishedWithError as exc:
            # It had already died (or crashed while shutting down); nothing is left running.
            log.warning("%s ended with status %s; see %s", self.name, exc.exit_code, self.log_file)
        self._discard_executor()

    def kill(self) -> None:
        """SIGKILL the process group, like a crash; the data dir stays as it is."""
        if self._executor is None:
            return
        self._log_marker("killing (SIGKILL)")
        self._executor.kill()
        self._discard_executor()

    def restart(self) -> None:
        """Graceful stop, then start again with the same ports and data."""
        self.stop()
        self.start()

    def _log_marker(self, event: str) -> None:
        try:
            with self.log_file.open("a") as handle:
                handle.write(f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} {event} {self.name} =====\n")
        except OSError:
            pass  # the log is a debugging aid; never let it block a stop

    def _discard_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None and executor.process is not None:
            # mirakuru only clears its state when it stopped the process itself.
            executor.kill()
        self._paused = False
        with _running_lock:
            if self in _running:
                _running.remove(self)
        self._after_stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
