"""Run the local infrastructure: a single-node Kafka broker (KRaft) and an Apicurio Registry.

Both are plain JVM processes started from the download cache (see ``infra.fetch``).
State lives in one directory per stack, so a restart keeps topics, offsets and schemas:

    <dir>/kafka/server.properties   generated on every start
    <dir>/kafka/data/               Kafka log dirs (formatted once)
    <dir>/kafka/kafka.log           broker output
    <dir>/registry/registry.log     registry output

The registry keeps its schemas in a Kafka topic (``kafkasql`` storage), so it has no state
of its own and survives restarts as long as the broker's data dir does.

CLI::

    python -m infra.stack up [--kafka-port 9092] [--controller-port 9093] [--registry-port 8081]
                             [--dir .run/stack]
    python -m infra.stack fetch
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ctypes
import errno
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
from confluent_kafka.admin import AdminClient
from mirakuru import SimpleExecutor
from mirakuru.exceptions import ProcessFinishedWithError

from infra.fetch import FetchError, ensure_downloads

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_REGISTRY_PORT = 8081
DEFAULT_STACK_DIR = Path(__file__).resolve().parent.parent / ".run" / "stack"
LOG4J_CONFIG = Path(__file__).resolve().parent / "config" / "log4j2.yaml"
CCOMPAT_PATH = "/apis/ccompat/v7"

# Exit status of a JVM that shut down because of SIGTERM (128 + 15).
_JVM_SIGTERM_EXIT = 128 + signal.SIGTERM
_LOG_TAIL_LINES = 30
_POLL_INTERVAL = 0.2


class StackError(RuntimeError):
    """A local infrastructure process could not be started or stopped."""


class PortInUseError(StackError):
    """A port the stack needs is already bound by another process."""


class JavaNotFoundError(StackError):
    """No usable ``java`` executable was found."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now.

    Picked below the kernel's ephemeral range when there is room: a client reconnecting to
    a stopped broker on an ephemeral port can be handed that very port as its source port
    (a TCP self-connect), and the broker could then not bind it again on restart.
    """
    ephemeral_start = _ephemeral_range_start()
    if ephemeral_start - _PORT_FLOOR >= 1000:
        for _ in range(100):
            port = random.randrange(_PORT_FLOOR, ephemeral_start)
            if _bind_succeeds(port, host, reuse_addr=False):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_PORT_FLOOR = 20000


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def java_executable() -> str:
    """Path of the ``java`` binary: ``$JAVA_HOME/bin/java`` or the one on ``PATH``."""
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


def _bind_succeeds(port: int, host: str = HOST, *, reuse_addr: bool = True) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse_addr:
            # Matches the JVMs' server sockets: a port in TIME_WAIT from our own last run is usable.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _port_accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    # Logs are appended across runs, so only read the end of the file.
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "".join(deque(text.splitlines(keepends=True), maxlen=lines))


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


_running: list[_JavaService] = []
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


class _JavaService:
    """Common lifecycle of one JVM process: start with readiness check, stop, kill, pause."""

    name: ClassVar[str] = "service"

    def __init__(self, directory: Path, *, start_timeout: float, stop_timeout: float) -> None:
        self.directory = Path(directory).resolve()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._executor: _JvmExecutor | None = None
        self._paused = False

    # subclasses provide these
    @property
    def log_file(self) -> Path:
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
        return self._executor is not None and self._executor.running()

    @property
    def pid(self) -> int | None:
        process = self._executor.process if self._executor else None
        return process.pid if process else None

    def start(self) -> None:
        """Start the process and block until it is ready; no-op if already running."""
        if self.running:
            return
        if self._executor is not None:
            # The process died on its own since the last start; reap it before starting anew.
            self._discard_executor()
        for label, port in self._ports().items():
            if not _bind_succeeds(port):
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
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if self._is_ready(deadline):
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{self.name} was not ready within {self.start_timeout:.0f}s; "
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
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

    def pause(self) -> None:
        """Freeze the process (SIGSTOP), e.g. to simulate an unresponsive broker."""
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Continue a paused process (SIGCONT)."""
        self._signal_group(signal.SIGCONT)
        self._paused = False

    def _log_marker(self, event: str) -> None:
        try:
            with self.log_file.open("a") as handle:
                handle.write(f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} {event} {self.name} =====\n")
        except OSError:
            pass  # the log is a debugging aid; never let it block a stop

    def _signal_group(self, sig: int) -> None:
        pid = self.pid
        if pid is None:
            raise StackError(f"{self.name} is not running")
        os.killpg(pid, sig)

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


# --- Kafka ------------------------------------------------------------------------------------

_SERVER_PROPERTIES = """\
# Generated by infra/stack.py on every start; edit the template there instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir}
# Topics are created explicitly by the services, so typos fail loudly instead of creating topics.
auto.create.topics.enable=false
# Single node: every internal topic must fit on one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.partitions=1
# Consumers in tests join groups right away instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# After a crash (SIGKILL) the restarted broker cannot register until the controller has
# expired its previous session; 9 s by default, which made crash tests slow.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
"""


def _random_cluster_id() -> str:
    # Same format as `kafka-storage random-uuid`: 16 random bytes, base64url without padding.
    # Kafka refuses ids starting with '-' (they look like command-line flags).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Broker(_JavaService):
    """Single-node Kafka broker in KRaft mode (combined broker and controller)."""

    name = "kafka"

    def __init__(
        self,
        directory: Path,
        port: int = DEFAULT_KAFKA_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        *,
        heap_mb: int = 512,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(directory, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self._admin: AdminClient | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "kafka.log"

    def _ports(self) -> dict[str, int]:
        return {"Kafka": self.port, "Kafka controller": self.controller_port}

    def _prepare(self, java: str) -> list[str]:
        classpath = ensure_downloads().kafka_classpath
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Rewritten every time: ports may differ between runs, the data dir stays valid.
        self.config_file.write_text(
            _SERVER_PROPERTIES.format(
                host=HOST, port=self.port, controller_port=self.controller_port, data_dir=self.data_dir
            )
        )
        log4j = f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath, log4j)
        return [
            java,
            f"-Xms{min(256, self.heap_mb)}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",  # plenty for a small heap, and no GC threads competing for 2 cores
            "-Djava.awt.headless=true",
            log4j,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.config_file),
        ]

    def _format(self, java: str, classpath: str, log4j: str) -> None:
        cmd = [java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "format"]
        cmd += ["-t", _random_cluster_id(), "-c", str(self.config_file)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise StackError(f"formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}")

    def _is_ready(self, deadline: float) -> bool:
        # Cheap TCP probe first: the admin client would log connection errors while it is down.
        if not _port_accepts(self.port):
            return False
        if self._admin is None:
            self._admin = AdminClient(
                {
                    "bootstrap.servers": self.bootstrap_servers,
                    "logger": logging.getLogger("infra.stack.kafka"),
                }
            )
        timeout = max(0.5, min(3.0, deadline - time.monotonic()))
        try:
            metadata = self._admin.list_topics(timeout=timeout)
        except Exception:  # KafkaException until the broker has joined its quorum
            return False
        return bool(metadata.brokers)

    def _after_stop(self) -> None:
        # Dropping the client closes its connections; it would otherwise keep reconnecting.
        self._admin = None


# --- Apicurio Registry ------------------------------------------------------------------------


class Registry(_JavaService):
    """Apicurio Registry with Kafka-backed (kafkasql) storage and the Confluent-compatible API."""

    name = "registry"

    def __init__(
        self,
        directory: Path,
        bootstrap_servers: str,
        port: int = DEFAULT_REGISTRY_PORT,
        *,
        journal_topic: str = "kafkasql-journal",
        heap_mb: int = 384,
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(directory, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.bootstrap_servers = bootstrap_servers
        self.port = port
        self.journal_topic = journal_topic
        self.heap_mb = heap_mb

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """Confluent-compatible Schema Registry API (what serializers are configured with)."""
        return self.base_url + CCOMPAT_PATH

    @property
    def log_file(self) -> Path:
        return self.directory / "registry.log"

    def _ports(self) -> dict[str, int]:
        return {"Schema Registry": self.port}

    def _prepare(self, java: str) -> list[str]:
        jar = ensure_downloads().apicurio_jar
        props = {
            "quarkus.http.host": HOST,
            "quarkus.http.port": self.port,
            "apicurio.storage.kind": "kafkasql",
            "apicurio.kafkasql.bootstrap.servers": self.bootstrap_servers,
            "apicurio.kafkasql.topic": self.journal_topic,
            # Derived names keep several registries on one broker (tests) apart.
            "apicurio.kafkasql.snapshots.topic": f"{self.journal_topic}-snapshots",
            "apicurio.events.kafka.topic": f"{self.journal_topic}-events",
            "apicurio.storage.snapshot.location": self.directory / "snapshots",
            "apicurio.import.work-dir": self.directory,
            # CPU savers: the default re-reads the dynamic log config every second and
            # logs every HTTP request.
            "apicurio.logconfigjob.every": "60s",
            "quarkus.http.access-log.enabled": "false",
            # The in-memory SQL store behind kafkasql does not need a 20-connection pool.
            "apicurio.datasource.jdbc.initial-size": 2,
            "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 10,
            # Startup reads the (usually empty) snapshots topic with one full poll; the 5 s
            # default made up half of the registry's start time.
            "apicurio.kafkasql.consumer.poll.timeout": 500,
        }
        return [
            java,
            f"-Xms{min(128, self.heap_mb)}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            # C1 only: starts about a second faster and the registry's load is tiny.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar",
            str(jar),
        ]

    def _is_ready(self, deadline: float) -> bool:
        if not _port_accepts(self.port):
            return False
        try:
            timeout = max(0.5, min(3.0, deadline - time.monotonic()))
            response = httpx.get(f"{self.base_url}/health/ready", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


# --- both together ----------------------------------------------------------------------------


class LocalStack:
    """Kafka broker plus Schema Registry sharing one state directory."""

    def __init__(
        self,
        directory: Path,
        kafka_port: int = DEFAULT_KAFKA_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        registry_port: int = DEFAULT_REGISTRY_PORT,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.broker = Broker(self.directory / "kafka", kafka_port, controller_port)
        self.registry = Registry(self.directory / "registry", self.broker.bootstrap_servers, registry_port)

    @classmethod
    def ephemeral(cls, directory: Path) -> LocalStack:
        """A stack on currently free ports, so it can run beside one on the standard ports."""
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        kafka_port, controller_port, registry_port = sorted(ports)
        return cls(directory, kafka_port, controller_port, registry_port)

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def registry_url(self) -> str:
        return self.registry.url

    def start(self) -> None:
        """Start the broker, then the registry (it stores its data in Kafka)."""
        ensure_downloads()
        self.broker.start()
        try:
            self.registry.start()
        except BaseException:
            self.broker.stop()
            raise

    def stop(self) -> None:
        """Stop the registry, then the broker. Idempotent."""
        try:
            self.registry.stop()
        finally:
            self.broker.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- CLI --------------------------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace) -> int:
    stack = LocalStack(args.dir, args.kafka_port, args.controller_port, args.registry_port)
    stop_requested = threading.Event()
    starting = True

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.set()
        if starting:
            # Abort the readiness wait; the except clause below stops what was started.
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    started = time.monotonic()
    print(f"starting Kafka and Schema Registry in {stack.directory} ...", flush=True)
    try:
        stack.start()
    except (StackError, FetchError) as exc:
        stack.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        stack.stop()
        print("interrupted during startup; stopped", file=sys.stderr)
        return 130
    starting = False
    print(
        f"ready after {time.monotonic() - started:.1f}s\n"
        f"  kafka bootstrap:   {stack.bootstrap_servers}\n"
        f"  schema registry:   {stack.registry_url}\n"
        f"  kafka log:         {stack.broker.log_file}\n"
        f"  registry log:      {stack.registry.log_file}\n"
        "press Ctrl-C to stop",
        flush=True,
    )
    exit_code = 0
    while not stop_requested.wait(timeout=1.0):
        for service in (stack.broker, stack.registry):
            if not service.running:
                print(
                    f"error: {service.name} exited unexpectedly; last lines of {service.log_file}:\n"
                    f"{_tail(service.log_file)}",
                    file=sys.stderr,
                )
                exit_code = 1
                stop_requested.set()
    print("stopping ...", flush=True)
    stack.stop()
    print("stopped", flush=True)
    return exit_code


def _cmd_fetch(_args: argparse.Namespace) -> int:
    paths = ensure_downloads()
    print(f"kafka libs:   {paths.kafka_libs}\napicurio jar: {paths.apicurio_jar}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start Kafka and the Schema Registry and wait for Ctrl-C")
    up.add_argument("--kafka-port", type=int, default=DEFAULT_KAFKA_PORT)
    up.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    up.add_argument("--registry-port", type=int, default=DEFAULT_REGISTRY_PORT)
    up.add_argument("--dir", type=Path, default=DEFAULT_STACK_DIR, help="state and log directory")
    up.set_defaults(handler=_cmd_up)
    fetch = commands.add_parser("fetch", help="download Kafka and Apicurio into the cache")
    fetch.set_defaults(handler=_cmd_fetch)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe otherwise
    try:
        return int(args.handler(args))
    except (StackError, FetchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
