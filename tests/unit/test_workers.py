"""WORKERS and the supervisor of httpapi.workers: the setting, one port shared by real worker processes, SIGTERM,
and workers that die."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from pydantic import ValidationError

from fulfillment_service.settings import FulfillmentServiceSettings
from harness.waiting import poll, wait_until
from httpapi.heap import YOUNG_THRESHOLD
from httpapi.workers import (
    SOCKET_FD_ENV,
    WorkersRefusedError,
    default_workers,
    is_worker,
    resolve_workers,
    supervise_if_asked,
)
from infra.ports import free_port, free_ports_in_a_row
from order_service.settings import OrderServiceSettings
from tests.unit.workers_fixture import MODULE

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://orders@db.example/orders"

# -- the setting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8), (None, 1)])
def test_default_is_half_the_cores_and_at_least_one(monkeypatch, cpus, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert default_workers() == expected


def test_unset_workers_take_the_default_on_postgres_and_one_on_sqlite():
    assert resolve_workers(None, {"database_url": POSTGRES}, cpus=8) == 4
    assert resolve_workers(None, {"database_url": "sqlite:///var/o.db"}, cpus=8) == 1
    assert resolve_workers(None, {"database_url": POSTGRES, "provider_database_url": "sqlite:///p.db"}, cpus=8) == 1


def test_more_than_one_worker_on_sqlite_is_refused_naming_the_setting():
    with pytest.raises(WorkersRefusedError, match=r"WORKERS=2 needs PostgreSQL: PROVIDER_DATABASE_URL is SQLite"):
        resolve_workers(2, {"database_url": POSTGRES, "provider_database_url": "sqlite:///p.db"})
    assert resolve_workers(1, {"database_url": "sqlite:///var/o.db"}) == 1
    assert resolve_workers(3, {"database_url": POSTGRES}) == 3
    with pytest.raises(ValueError, match="at least 1"):
        resolve_workers(0, {"database_url": POSTGRES})


def test_services_read_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKERS", "3")
    monkeypatch.setenv("DATABASE_URL", POSTGRES)
    assert OrderServiceSettings().workers == 3
    monkeypatch.setenv("PROVIDER_DATABASE_URL", POSTGRES)
    assert FulfillmentServiceSettings().workers == 3
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/order-service.db")
    with pytest.raises(ValidationError, match="WORKERS=3 needs PostgreSQL: DATABASE_URL is SQLite"):
        OrderServiceSettings()
    monkeypatch.delenv("WORKERS")
    assert OrderServiceSettings().workers == 1  # SQLite: one process whatever the cores


def test_one_worker_or_a_worker_itself_serves_without_supervising(monkeypatch):
    options = dict(ready_path="/", graceful_seconds=1, log_level="info", log_format="console", service="s")
    assert supervise_if_asked("nothing", 1, "127.0.0.1", 1, **options) is None
    monkeypatch.setenv(SOCKET_FD_ENV, "3")
    assert is_worker()
    assert supervise_if_asked("nothing", 4, "127.0.0.1", 1, **options) is None


# -- the supervisor, with real worker processes ----------------------------------------------------------------


@dataclass
class Supervisor:
    """The fixture's supervisor process and the port its workers share."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.process.pid).children()}

    def answering_pid(self) -> int:
        return httpx.get(self.url + "/pid", timeout=5).json()["pid"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, output


@pytest.fixture
def start_supervisor() -> Iterator:
    started: list[Supervisor] = []

    def start(workers: int, **env: str) -> Supervisor:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE],
            cwd=ROOT,
            env={**os.environ, "FIXTURE_WORKERS": str(workers), "FIXTURE_PORT": str(port), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        supervisor = Supervisor(process, port)
        started.append(supervisor)
        return supervisor

    yield start
    for supervisor in started:
        if supervisor.process.poll() is None:
            for pid in supervisor.worker_pids():
                os.kill(pid, signal.SIGKILL)
            supervisor.process.kill()
            supervisor.process.communicate(timeout=10)


def _pids_answering_concurrently(supervisor: Supervisor) -> set[int]:
    """The workers that answered four concurrent requests that each hold their worker for 0.3 s."""
    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(lambda _: httpx.get(supervisor.url + "/busy", timeout=10).json()["pid"], range(4))
        return set(answers)


def test_workers_share_one_port_and_sigterm_stops_them_all_with_exit_0(start_supervisor):
    supervisor = start_supervisor(2)
    workers = wait_until(lambda: len(supervisor.worker_pids()) == 2 and supervisor.worker_pids(), 30, 0.1)
    wait_until(lambda: poll(supervisor.answering_pid, 0, ignore=(httpx.HTTPError,)), 30, message="an answer")
    seen: set[int] = set()
    wait_until(lambda: seen.update(_pids_answering_concurrently(supervisor)) or seen == workers, 30, 0)
    code, output = supervisor.stop(signal.SIGTERM)
    assert code == 0, output
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(supervisor.url + "/pid", timeout=2)


def test_a_started_worker_has_its_start_up_heap_frozen_and_fewer_young_collections(start_supervisor):
    supervisor = start_supervisor(1)

    def read_heap() -> dict[str, int]:
        return httpx.get(supervisor.url + "/heap", timeout=5).json()

    heap = wait_until(lambda: poll(read_heap, 0, ignore=(httpx.HTTPError,)), 30, message="an answer")
    assert heap["young_threshold"] == YOUNG_THRESHOLD
    assert heap["frozen"] > 10_000  # FastAPI, pydantic and uvicorn alone are tens of thousands of objects
    code, output = supervisor.stop()
    assert code == 0, output


def test_sigint_stops_the_workers_gracefully_too(start_supervisor):
    supervisor = start_supervisor(2)
    wait_until(lambda: len(supervisor.worker_pids()) == 2, 30)
    wait_until(lambda: poll(supervisor.answering_pid, 0, ignore=(httpx.HTTPError,)), 30, message="an answer")
    code, output = supervisor.stop(signal.SIGINT)
    assert code == 0, output
    assert "SIGINT received, stopping 2 workers" in output


def test_a_worker_that_dies_is_restarted_and_the_port_keeps_answering(start_supervisor):
    supervisor = start_supervisor(2)
    before = wait_until(lambda: len(supervisor.worker_pids()) == 2 and supervisor.worker_pids(), 30)
    wait_until(lambda: poll(supervisor.answering_pid, 0, ignore=(httpx.HTTPError,)), 30, message="an answer")
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = wait_until(lambda: (pids := supervisor.worker_pids()) - before and len(pids) == 2 and pids, 30)
    assert victim not in after
    replacement = (after - before).pop()
    wait_until(lambda: replacement in _pids_answering_concurrently(supervisor), 30, 0, message="the new worker")
    code, output = supervisor.stop()
    assert code == 0, output
    assert f"(pid {victim}) exited unexpectedly with signal SIGKILL; restarting it" in output


def test_workers_that_keep_dying_make_the_supervisor_give_up_with_exit_1(start_supervisor):
    supervisor = start_supervisor(2, FIXTURE_FAIL_FROM="1", FIXTURE_MAX_RESTARTS="2", FIXTURE_RESTART_DELAY="0.05")
    output, _ = supervisor.process.communicate(timeout=60)
    assert supervisor.process.returncode == 1, output
    assert output.count("exited unexpectedly with status 5; restarting it") == 2
    assert "3 workers died within 60s, giving up" in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(supervisor.url + "/pid", timeout=2)  # the first worker was stopped too


def test_a_first_worker_that_cannot_start_ends_the_supervisor_with_exit_1(start_supervisor):
    supervisor = start_supervisor(2, FIXTURE_FAIL_FROM="0")
    output, _ = supervisor.process.communicate(timeout=60)
    assert supervisor.process.returncode == 1, output
    assert "worker 0" in output and "exited with status 5 during start-up; giving up" in output
    assert "worker 1 started" not in output


def test_each_worker_serves_its_own_metrics_on_a_port_of_its_own(start_supervisor):
    base = free_ports_in_a_row(2)
    supervisor = start_supervisor(2, FIXTURE_METRICS_PORT=str(base))
    workers = wait_until(lambda: len(supervisor.worker_pids()) == 2 and supervisor.worker_pids(), 30, 0.1)

    def scraped(port: int) -> int:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return int(float(next(line for line in text.splitlines() if line.startswith("fixture_worker_pid ")).split()[1]))

    pids = {poll(lambda port=port: scraped(port), 30, ignore=(httpx.HTTPError,)) for port in (base, base + 1)}
    assert pids == workers
    code, output = supervisor.stop(signal.SIGTERM)
    assert code == 0, output


def test_a_stopping_supervisor_refuses_new_connections_while_requests_in_flight_finish(start_supervisor):
    supervisor = start_supervisor(2)
    wait_until(lambda: len(supervisor.worker_pids()) == 2, 30)
    wait_until(lambda: poll(supervisor.answering_pid, 0, ignore=(httpx.HTTPError,)), 30, message="an answer")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.get, supervisor.url + "/slow", timeout=20)
        wait_until(lambda: _connections_to(supervisor) > 0, 10, 0.05, message="the slow request reaches a worker")
        supervisor.process.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                httpx.get(supervisor.url + "/pid", timeout=1)
            except httpx.ConnectError:
                return True
            except httpx.HTTPError:
                return False
            return False

        wait_until(refused, 2.5, 0.05, message="a new connection refused while the slow request is still in flight")
        assert not in_flight.done()
        assert in_flight.result().status_code == 200
    output, _ = supervisor.process.communicate(timeout=30)
    assert supervisor.process.returncode == 0, output


def _connections_to(supervisor: Supervisor) -> int:
    """Established connections to the supervisor's port held by its workers."""
    count = 0
    for pid in supervisor.worker_pids():
        with contextlib.suppress(psutil.Error):
            count += sum(
                1
                for connection in psutil.Process(pid).net_connections("tcp")
                if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == supervisor.port
            )
    return count
