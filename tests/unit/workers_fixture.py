"""A stand-in service for the supervisor's tests: `python -m tests.unit.workers_fixture`.

Without SERVER_SOCKET_FD it is the supervisor (httpapi.workers.WorkerSupervisor over FIXTURE_WORKERS copies of
itself on 127.0.0.1:FIXTURE_PORT, with FIXTURE_MAX_RESTARTS and FIXTURE_RESTART_DELAY) and exits with its status; as
a worker it serves, through httpapi.serve, GET /pid (its process id and slot) and GET /busy (holds its event loop
for 0.3 s, so that concurrent connections go to other workers) and GET /slow (answers after 3 s, its loop free)
and GET /heap (the garbage collector's frozen objects and young threshold, httpapi.heap); with
FIXTURE_METRICS_PORT, worker i serves a gauge of its pid on that port + i. FIXTURE_FAIL_FROM=n makes the
workers of slot n and above exit with status 5 as they start.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import Any

from httpapi.workers import WORKER_INDEX_ENV, WorkerSupervisor, adopt_worker_socket, listening_socket
from observability.logs import configure_logging

MODULE = "tests.unit.workers_fixture"


def _app() -> Any:
    from fastapi import FastAPI  # imported by serving workers only: failing ones exit sooner

    app = FastAPI()

    @app.get("/pid")
    async def pid() -> dict[str, int]:
        return {"pid": os.getpid(), "slot": int(os.environ[WORKER_INDEX_ENV])}

    @app.get("/slow")
    async def slow() -> dict[str, int]:
        await asyncio.sleep(3)  # in flight for a while, the event loop free
        return {"pid": os.getpid()}

    @app.get("/heap")
    async def heap() -> dict[str, int]:
        return {"frozen": gc.get_freeze_count(), "young_threshold": gc.get_threshold()[0]}

    @app.get("/busy")
    async def busy() -> dict[str, int]:
        time.sleep(0.3)  # blocks this worker's event loop on purpose
        return {"pid": os.getpid()}

    return app


def main() -> int:
    """Supervise, or serve as a worker (see the module docstring); the exit status."""
    sock = adopt_worker_socket()
    if sock is None:
        configure_logging("info", "console")
        with listening_socket("127.0.0.1", int(os.environ["FIXTURE_PORT"])) as listening:
            return WorkerSupervisor(
                [sys.executable, "-m", MODULE],
                int(os.environ["FIXTURE_WORKERS"]),
                listening,
                ready_path="/pid",
                graceful_seconds=10,
                start_timeout=30,
                max_restarts=int(os.environ.get("FIXTURE_MAX_RESTARTS", "5")),
                restart_delay=float(os.environ.get("FIXTURE_RESTART_DELAY", "0.2")),
            ).run()
    if int(os.environ[WORKER_INDEX_ENV]) >= int(os.environ.get("FIXTURE_FAIL_FROM", "1000")):
        return 5
    from prometheus_client import CollectorRegistry, Gauge

    from httpapi.serve import serve
    from httpapi.workers import serve_worker_metrics

    registry = CollectorRegistry()
    Gauge("fixture_worker_pid", "the worker's process id", registry=registry).set(os.getpid())
    metrics_port = os.environ.get("FIXTURE_METRICS_PORT")
    serve_worker_metrics(registry, "127.0.0.1", int(metrics_port) if metrics_port else None)
    serve(_app(), "127.0.0.1", 0, "warning", graceful_seconds=5, log_format="console", sock=sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
