"""Runs the two services as real processes: for `make run`, the tests, the benchmark and chaos runs."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from events.topology import TOPICS
from infra.pausing import Pausable
from infra.prefixed_output import LineSink, pump_lines
from infra.supervision import log_tail

ROOT = Path(__file__).resolve().parent.parent


class ServiceStartError(RuntimeError):
    """A service exited during start-up or did not answer its health endpoint in time."""


@dataclass
class ServiceProcess(Pausable):
    """One service process; start() returns once its health endpoint answers; pause() freezes it (SIGSTOP).

    Its stdout and stderr are appended to log_file. With echo set (`make run`: a prefixed terminal, see
    infra.prefixed_output), each line of that output also goes to echo as it comes; stop() and kill() return once
    the last line has gone out.
    """

    module: str
    port: int
    env: dict[str, str]
    log_file: Path
    health_path: str
    host: str = "127.0.0.1"
    # RLIMIT_NOFILE (soft and hard) for the process; None: inherited. The services raise their soft limit to
    # the hard one at start (one descriptor per connection), so a lower limit must lower both.
    open_files: int | None = None
    echo: LineSink | None = None
    # The source tree the process runs from (its working directory): this checkout, or another commit's code
    # (harness.released), which then also goes first on PYTHONPATH so its packages shadow this installation's.
    root: Path = ROOT
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _output: threading.Thread | None = field(default=None, init=False, repr=False)
    restarts: int = field(default=0, init=False)

    @property
    def name(self) -> str:
        """The service's module name, e.g. ``order_service``."""
        return self.module

    @property
    def label(self) -> str:
        """The service's name as compose and the log files spell it, e.g. ``order-service``."""
        return self.module.replace("_", "-")

    @property
    def url(self) -> str:
        """Base URL of the running service."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id (also its session id), or None before the first start."""
        return self.process.pid if self.process else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait (timeout seconds) until its health endpoint answers; ServiceStartError if not."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._paused = False
        env = {**os.environ, **self.env, "HOST": self.host, "PORT": str(self.port)}
        if self.root != ROOT:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", self.module]
        if self.echo is None:
            with self.log_file.open("ab") as log:
                self.process = subprocess.Popen(
                    argv, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        else:
            self.process = subprocess.Popen(
                argv, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
            assert self.process.stdout is not None
            self._output = pump_lines(self.process.stdout, self.log_file, self.echo)
        if self.open_files is not None:
            resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE, (self.open_files, self.open_files))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"{self.module} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + self.health_path, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise ServiceStartError(f"{self.module} not healthy on {self.url} within {timeout:g}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful shutdown) and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if not self.running:
            self._drain_output()
            return self.process.returncode if self.process else None
        assert self.process is not None
        if self._paused:
            self.resume()  # a stopped process would act on SIGTERM only when continued
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode
        self._drain_output()
        return code

    def kill(self) -> None:
        """SIGKILL to the process and its process group: it dies mid-work, as in a crash, and so do the workers
        a supervisor (WORKERS > 1, httpapi.workers) started, which would otherwise go on serving the port."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._drain_output()

    def processes(self) -> list[int]:
        """The process ids of the service: its own and its descendants' (a supervisor's workers with WORKERS > 1),
        [] when it is not running."""
        if not self.running:
            return []
        assert self.process is not None
        try:
            return [self.process.pid, *(child.pid for child in psutil.Process(self.process.pid).children(True))]
        except psutil.NoSuchProcess:
            return []

    def _drain_output(self, timeout: float = 5.0) -> None:
        """Wait (up to timeout seconds) for the echo of an exited process's last lines."""
        if self._output is not None:
            self._output.join(timeout)
            self._output = None

    def restart(self, timeout: float = 60.0) -> None:
        """Graceful stop, then start again with the same port and environment (counted in restarts)."""
        self.stop()
        self.restarts += 1
        self.start(timeout)

    def tail(self, lines: int = 40) -> str:
        """The last lines of the service's log, or "(no log)"."""
        return log_tail(self.log_file, lines) or "(no log)"


def order_service(port: int, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """The Order Service on port with env, logging to log_dir/order-service-<port>.log (not started)."""
    return ServiceProcess("order_service", port, env, log_dir / f"order-service-{port}.log", "/health/live")


def fulfillment_service(port: int, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """The Fulfillment Service on port with env, logging to log_dir/fulfillment-service-<port>.log (not started)."""
    return ServiceProcess(
        "fulfillment_service", port, env, log_dir / f"fulfillment-service-{port}.log", "/api/fulfillment/health"
    )


def topic_env(prefix: str = "") -> dict[str, str]:
    """{<SETTING>_TOPIC: name, <SETTING>_DLQ_TOPIC: name} for every topic of the event topology, each name
    prefixed (tests isolate their topics so)."""
    env: dict[str, str] = {}
    for topic in TOPICS:
        env[topic.topic_env] = f"{prefix}{topic.name}"
        env[topic.dead_letter_env] = f"{prefix}{topic.dead_letter}"
    return env


# The SQLite databases of the two services, by name (the file is <name>.db): each service's own, and the
# Fulfillment Service's mock provider's ledger.
ORDER_DATABASE = "order-service"
FULFILLMENT_DATABASE = "fulfillment-service"
PROVIDER_DATABASE = "shipping-provider"
DATABASES = (ORDER_DATABASE, FULFILLMENT_DATABASE, PROVIDER_DATABASE)


def service_env(
    bootstrap_servers: str,
    registry_url: str,
    data_dir: Path,
    prefix: str = "",
    database_dirs: Mapping[str, Path] | None = None,
    **extra: str,
) -> dict[str, dict[str, str]]:
    """Environment for both services against one stack; prefix isolates topics and groups (tests).

    Each SQLite database (DATABASES) is the file <name>.db in data_dir, or in database_dirs[name] where given
    (e.g. a filesystem of its own). ValueError for a name database_dirs gives that is not in DATABASES.
    """
    directories = dict(database_dirs or {})
    unknown = set(directories) - set(DATABASES)
    if unknown:
        raise ValueError(f"unknown database(s) {sorted(unknown)}; known: {', '.join(DATABASES)}")

    def url(name: str) -> str:
        return f"sqlite:///{directories.get(name, data_dir)}/{name}.db"

    common = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "SCHEMA_REGISTRY_URL": registry_url,
        **topic_env(prefix),
        **extra,
    }
    return {
        "order": {
            **common,
            "DATABASE_URL": url(ORDER_DATABASE),
            "CONSUMER_GROUP": f"{prefix}order-service",
        },
        "fulfillment": {
            **common,
            "DATABASE_URL": url(FULFILLMENT_DATABASE),
            "PROVIDER_DATABASE_URL": url(PROVIDER_DATABASE),
            "CONSUMER_GROUP": f"{prefix}fulfillment-service",
        },
    }
