"""Runs a service under uvicorn the same way for both services."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Iterable

import uvicorn
from fastapi import FastAPI

from httpapi.heap import settle_heap
from httpapi.slow_clients import (
    BODY_IDLE_SECONDS,
    BODY_SECONDS,
    HEAD_SECONDS,
    bounded_protocol,
    raise_open_file_limit,
)
from httpapi.workers import serve_worker_metrics
from observability.logs import configure_logging

STARTUP_FAILURE = 3  # uvicorn's exit status for an app that never started


def serve(
    app: FastAPI,
    host: str,
    port: int,
    log_level: str,
    graceful_seconds: float,
    *,
    head_timeout_seconds: float = HEAD_SECONDS,
    body_idle_timeout_seconds: float = BODY_IDLE_SECONDS,
    body_timeout_seconds: float = BODY_SECONDS,
    max_connections: int = 4096,
    log_format: str = "auto",
    service: str | None = None,
    sock: socket.socket | None = None,
    worker_metrics_port: int | None = None,
) -> None:
    """Serve app on host:port until SIGTERM, then shut down within graceful_seconds and exit 0.

    sock: an already listening socket to serve on instead of binding host:port (a worker of httpapi.workers
    serves on its supervisor's); exits with status 3, as uvicorn.run does, when the app fails to start. A worker
    with worker_metrics_port also serves app.state.metrics (httpapi.app.contract_app) on a port of its own
    (httpapi.workers.serve_worker_metrics).

    A request's head must arrive within head_timeout_seconds, its body must not stall for longer than
    body_idle_timeout_seconds and must be complete within body_timeout_seconds (httpapi.slow_clients).
    Beyond max_connections open connections (or requests in progress) new requests get 503 at once; near the
    open-file limit a new connection closes the one that has waited longest for a request head.
    WebSocket upgrades are not served (the APIs have none): such a request is an ordinary HTTP request.
    Every log line, uvicorn's included, goes to stderr at log_level in log_format (observability.logs), with
    service as its `service` field; uvicorn's own access log is off (httpapi.access_log writes one instead).
    Requests refused before the app are counted by app.state.refused_requests when the app has it
    (httpapi.app.contract_app with metrics). Once the app has started, the garbage collector's heap is settled
    (httpapi.heap: start-up's objects frozen, fewer and shorter collections). As it stops, it first calls the
    functions in app.state.on_stopping (httpapi.app.contract_app), then waits for the requests in flight.
    """
    configure_logging(log_level, log_format, service=service)
    metrics = getattr(app.state, "metrics", None)
    serve_worker_metrics(
        metrics.registry if metrics is not None and metrics.enabled else None, host, worker_metrics_port
    )
    open_files = raise_open_file_limit()
    # uvicorn re-raises SIGTERM once it has shut down gracefully; a no-op handler turns that into exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        log_config=None,  # uvicorn's loggers propagate to the root logger configured above
        timeout_graceful_shutdown=int(graceful_seconds),
        http=bounded_protocol(
            head_timeout_seconds,
            body_idle_timeout_seconds,
            body_timeout_seconds,
            max_connections=max_connections,
            open_files=open_files,
            on_refused=getattr(app.state, "refused_requests", None),
        ),
        ws="none",
    )
    server = Server(config, on_stopping=getattr(app.state, "on_stopping", ()))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises a SIGINT it stopped for, as uvicorn.run
        server.run(sockets=[sock] if sock is not None else None)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Server(uvicorn.Server):
    """uvicorn's server, with the heap settled once the app has started (httpapi.heap), and on_stopping called
    as it stops: before uvicorn waits (at most its graceful timeout) for the requests in flight, so that requests
    that would wait long (long polls) can answer at once instead of being cancelled at the end with a 500."""

    def __init__(self, config: uvicorn.Config, on_stopping: Iterable[Callable[[], None]] = ()) -> None:
        super().__init__(config)
        self._on_stopping = list(on_stopping)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # the app's lifespan start-up, then the listening sockets
        if not self.should_exit:
            settle_heap()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for stopping in self._on_stopping:
            stopping()
        await super().shutdown(sockets=sockets)
