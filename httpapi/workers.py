"""Several server processes of one service on one port: the WORKERS setting and the supervisor that runs them.

With WORKERS > 1, `python -m <service>` is a small supervisor: it opens the listening socket itself, then starts
WORKERS child processes (`python -m <service>` again, as new interpreters, never forked) that each serve the app
on that inherited socket; the kernel hands each new connection to one of them. The supervisor starts no
threads, Kafka clients or database engines of its own; it

- starts the first worker alone and waits until it answers on the port (migrations and topic creation are done
  once, by it), then the others;
- restarts a worker that exits while nobody asked it to, with a log line naming it and its exit status, and gives
  up (stops the others, exit status 1) when more than `max_restarts` such exits fall within `restart_window`
  seconds, or when the first worker dies before it answered (a start-up failure: restarting it would not help);
- on SIGTERM or SIGINT closes its listening socket (with the workers' closed as they stop, a new connection is
  refused at once instead of waiting for a worker that will never take it), sends SIGTERM to every worker (each
  drains as a single-process service does), waits, kills what is left after the grace period, and exits 0 when
  every worker exited cleanly, 1 otherwise.

Each worker has its own metrics: with WORKER_METRICS_PORT set, worker i also serves them on WORKER_METRICS_PORT + i
(serve_worker_metrics), one scrape target per worker.

A worker learns its socket from SERVER_SOCKET_FD in its environment (the descriptor number, passed with
`pass_fds`); that variable is what makes `python -m <service>` serve instead of supervise. Workers block SIGINT:
a Ctrl-C in a terminal reaches the whole process group, and the supervisor's SIGTERM is the one stop signal
they act on (uvicorn treats a second SIGINT as "exit now, without draining").
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server

from observability.logs import configure_logging

log = logging.getLogger(__name__)

SOCKET_FD_ENV = "SERVER_SOCKET_FD"  # set by the supervisor in each worker's environment: the listening socket
WORKER_INDEX_ENV = "WORKER_INDEX"  # the worker's slot, 0..WORKERS-1 (log lines, nothing else)
BACKLOG = 2048  # uvicorn's default listen backlog
# More workers than this is a mistake (each is an interpreter with its own database pools), not a setting.
MAX_WORKERS = 64


class WorkersRefusedError(ValueError):
    """WORKERS > 1 was asked for with a database that only one process may use (SQLite)."""


def default_workers(cpus: int | None = None) -> int:
    """Server processes per service when WORKERS is not set: half the cores (both services share the machine),
    at least 1. cpus: the core count (os.cpu_count() by default; None from it counts as 1)."""
    count = cpus if cpus is not None else os.cpu_count()
    return max(1, (count or 1) // 2)


def is_sqlite_url(url: str) -> bool:
    """Whether a DATABASE_URL-style URL names SQLite (`sqlite:///...`, any driver)."""
    return url.strip().lower().startswith("sqlite")


def resolve_workers(requested: int | None, database_urls: Mapping[str, str], cpus: int | None = None) -> int:
    """The number of server processes for a service whose databases are database_urls (setting name -> URL).

    requested None (WORKERS not set): default_workers(cpus) when no database is SQLite, else 1 (SQLite serves
    one process only: the services' replica guarantees rest on PostgreSQL's row locks and `SKIP LOCKED`).
    Raises ValueError for requested < 1, and WorkersRefusedError (a ValueError) for requested > 1 with any SQLite
    database, naming the settings to change.
    """
    sqlite = [name.upper() for name, url in database_urls.items() if is_sqlite_url(url)]
    if requested is None:
        return 1 if sqlite else default_workers(cpus)
    if requested < 1:
        raise ValueError(f"WORKERS must be at least 1, got {requested}")
    if requested > 1 and sqlite:
        raise WorkersRefusedError(
            f"WORKERS={requested} needs PostgreSQL: {', '.join(sqlite)} "
            f"{'is' if len(sqlite) == 1 else 'are'} SQLite, which one process only may use; "
            "set WORKERS=1 or point them at one PostgreSQL database (postgresql://...)"
        )
    return requested


def listening_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A TCP socket bound to host:port (IPv6 when host is an IPv6 address), listening and inheritable, as uvicorn
    binds its own (SO_REUSEADDR). port 0 picks a free port (see getsockname()). OSError if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def is_worker(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a worker started by a supervisor (SERVER_SOCKET_FD is set)."""
    return bool((environ if environ is not None else os.environ).get(SOCKET_FD_ENV))


def serve_worker_metrics(
    registry: CollectorRegistry | None, host: str, base_port: int | None, environ: Mapping[str, str] | None = None
) -> int | None:
    """In a worker, with base_port set: serve registry (this worker's metrics) at GET /metrics on
    base_port + WORKER_INDEX of host, on a thread of prometheus_client's (start_http_server), and return that port.
    Every worker answers GET /metrics on the shared port too, but a scrape there reaches whichever worker the
    kernel hands the connection to, so its counters seem to jump; Prometheus scrapes each worker's own port as a
    target of its own instead. None (nothing served) outside a worker, without base_port or without a registry
    (metrics disabled). OSError when the port cannot be bound."""
    environ = environ if environ is not None else os.environ
    if base_port is None or registry is None or not is_worker(environ):
        return None
    port = base_port + int(environ[WORKER_INDEX_ENV])
    start_http_server(port, addr=host, registry=registry)
    return port


def adopt_worker_socket(environ: Mapping[str, str] | None = None) -> socket.socket | None:
    """In a worker: the supervisor's listening socket (from SERVER_SOCKET_FD), with SIGINT blocked from here on
    (see the module docstring); None when this process is not a worker. ValueError for a value that is no
    descriptor number, OSError for a descriptor that is not open."""
    value = (environ if environ is not None else os.environ).get(SOCKET_FD_ENV)
    if not value:
        return None
    sock = socket.socket(fileno=int(value))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return sock


@dataclass
class _Slot:
    """One worker position: its current process and when it may be started again."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    start_after: float = 0.0
    exit_codes: list[int] = field(default_factory=list)


class WorkerSupervisor:
    """Runs count workers (argv, e.g. [python, -m, order_service]) on sock until SIGTERM/SIGINT; see run().

    ready_path: an HTTP path the first worker answers once started (any status); graceful_seconds: how long
    workers may drain after SIGTERM before they are killed; start_timeout: how long the first worker may take to
    answer; max_restarts within restart_window seconds: how many unexpected worker exits are restarted before
    the supervisor gives up; restart_delay: seconds between an exit and its restart. env: the workers'
    environment (default: this process's), to which SERVER_SOCKET_FD and WORKER_INDEX are added.
    """

    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        sock: socket.socket,
        *,
        ready_path: str = "/",
        graceful_seconds: float = 30.0,
        start_timeout: float = 120.0,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        restart_delay: float = 1.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.argv = list(argv)
        self.sock = sock
        self.ready_path = ready_path
        self.graceful_seconds = graceful_seconds
        self.start_timeout = start_timeout
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.restart_delay = restart_delay
        self.env = dict(env if env is not None else os.environ)
        self.slots = [_Slot(i) for i in range(count)]
        self.restarts: deque[float] = deque()  # monotonic times of unexpected exits within the window
        self.stop_signal: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)

    # -- the loop ---------------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (returns 0 when every worker then exited cleanly, else 1), or until the
        first worker fails to start or workers keep dying (returns 1). Installs handlers for SIGTERM, SIGINT
        and SIGCHLD (main thread only) and restores them before returning."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
        previous_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only wakes the loop (through the wakeup fd)
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> int:
        address = self.sock.getsockname()
        log.info("supervisor: %d workers on %s:%s", len(self.slots), address[0], address[1])
        first = self.slots[0]
        self._start(first)
        if not self._wait_first_ready(first):
            return self._shutdown(failed=self.stop_signal is None)
        for slot in self.slots[1:]:
            self._start(slot)
        while self.stop_signal is None:
            self._wait(1.0)
            if self.stop_signal is not None:
                break
            now = time.monotonic()
            for slot in self.slots:
                exited = slot.process is not None and slot.process.poll() is not None
                if exited and not self._note_unexpected_exit(slot, now):
                    return self._shutdown(failed=True)
                if slot.process is None and now >= slot.start_after:
                    self._start(slot)
        return self._shutdown(failed=False)

    def _wait_first_ready(self, first: _Slot) -> bool:
        """Whether the first worker answered ready_path before start_timeout (False: it exited, or a stop signal
        or the timeout came first)."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.stop_signal is None:
            assert first.process is not None
            if first.process.poll() is not None:
                log.error(
                    "supervisor: worker 0 (pid %d) exited with %s during start-up; giving up",
                    first.process.pid,
                    _describe_exit(first.process.returncode),
                )
                first.exit_codes.append(first.process.returncode)
                first.process = None
                return False
            if self._answers():
                return True
            self._wait(0.1)
        if self.stop_signal is None:
            log.error(
                "supervisor: worker 0 did not answer %s within %gs; giving up", self.ready_path, self.start_timeout
            )
        return False

    def _answers(self) -> bool:
        """Whether a worker answers an HTTP GET of ready_path on the shared socket (any status)."""
        host, port = self.sock.getsockname()[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        connection = http.client.HTTPConnection(host, port, timeout=1.0)
        try:
            connection.request("GET", self.ready_path)
            connection.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _note_unexpected_exit(self, slot: _Slot, now: float) -> bool:
        """Record a worker's exit that nobody asked for; False once workers keep dying (give up)."""
        assert slot.process is not None
        code = slot.process.returncode
        pid = slot.process.pid
        slot.exit_codes.append(code)
        slot.process = None
        self.restarts.append(now)
        while self.restarts and now - self.restarts[0] > self.restart_window:
            self.restarts.popleft()
        if len(self.restarts) > self.max_restarts:
            log.error(
                "supervisor: worker %d (pid %d) exited with %s; %d workers died within %gs, giving up",
                slot.index,
                pid,
                _describe_exit(code),
                len(self.restarts),
                self.restart_window,
            )
            return False
        log.warning(
            "supervisor: worker %d (pid %d) exited unexpectedly with %s; restarting it in %gs",
            slot.index,
            pid,
            _describe_exit(code),
            self.restart_delay,
        )
        slot.start_after = now + self.restart_delay
        return True

    def _shutdown(self, *, failed: bool) -> int:
        """Close the listening socket, SIGTERM every live worker, wait graceful_seconds, SIGKILL the rest; 0 if not
        failed and all exited cleanly (status 0, or killed by that SIGTERM before serving), else 1."""
        # The workers close their copies as they stop; once this one is closed too, a new connection is refused at
        # once instead of waiting in the kernel's queue for a worker that will never accept it.
        self.sock.close()
        live = [slot for slot in self.slots if slot.process is not None and slot.process.poll() is None]
        if self.stop_signal is not None:
            log.info("supervisor: %s received, stopping %d workers", signal.Signals(self.stop_signal).name, len(live))
        for slot in live:
            assert slot.process is not None
            with contextlib.suppress(ProcessLookupError):
                slot.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_seconds
        clean = True
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            try:
                code = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error(
                    "supervisor: worker %d (pid %d) still running after %gs; killing it",
                    slot.index,
                    process.pid,
                    self.graceful_seconds,
                )
                process.kill()
                code = process.wait()
            slot.exit_codes.append(code)
            if code not in (0, -signal.SIGTERM):
                log.error(
                    "supervisor: worker %d (pid %d) exited with %s", slot.index, process.pid, _describe_exit(code)
                )
                clean = False
        return 1 if failed or not clean else 0

    # -- helpers -----------------------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        fd = self.sock.fileno()
        env = {**self.env, SOCKET_FD_ENV: str(fd), WORKER_INDEX_ENV: str(slot.index)}
        slot.process = subprocess.Popen(self.argv, env=env, pass_fds=(fd,))
        log.info("supervisor: worker %d started (pid %d)", slot.index, slot.process.pid)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum

    def _wait(self, seconds: float) -> None:
        """Sleep up to seconds, waking early for any signal (the wakeup fd)."""
        try:
            ready, _, _ = select.select([self._wake_r], [], [], seconds)
        except InterruptedError:
            return
        if ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass


def _describe_exit(code: int | None) -> str:
    """An exit status as a log line says it: "status 3" or "signal SIGKILL"."""
    if code is None:
        return "no status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


def supervise(module: str, count: int, host: str, port: int, *, ready_path: str, graceful_seconds: float) -> int:
    """Open host:port and run count workers of `python -m module` on it until SIGTERM/SIGINT (WorkerSupervisor,
    with its default restart policy); returns the exit status for the supervisor's process: 1 also when the
    port cannot be bound (logged; no worker is started then)."""
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        log.error("supervisor: cannot listen on %s:%s: %s", host, port, exc)
        return 1
    with sock:
        supervisor = WorkerSupervisor(
            [sys.executable, "-m", module], count, sock, ready_path=ready_path, graceful_seconds=graceful_seconds
        )
        return supervisor.run()


def supervise_if_asked(
    module: str,
    workers: int,
    host: str,
    port: int,
    *,
    ready_path: str,
    graceful_seconds: float,
    log_level: str,
    log_format: str,
    service: str,
) -> None:
    """A service's `__main__` calls this first. With workers > 1 in a process that is no worker: log as the
    service does (log_level, log_format, service: observability.logs), supervise workers of `python -m module` on
    host:port (supervise()) and exit with the supervisor's status (SystemExit). Otherwise return at once: this
    process serves (on adopt_worker_socket(), or on host:port with WORKERS=1)."""
    if workers <= 1 or is_worker():
        return
    configure_logging(log_level, log_format, service=service)
    sys.exit(supervise(module, workers, host, port, ready_path=ready_path, graceful_seconds=graceful_seconds))
