"""`python -m order_service`: serve the Order Service (WORKERS processes on one port, see httpapi.workers)."""

from __future__ import annotations

from httpapi.serve import serve
from httpapi.workers import adopt_worker_socket, supervise_if_asked
from observability.tracing import configure_tracing
from order_service.app import create_app
from order_service.settings import OrderServiceSettings

SERVICE = "order-service"  # the `service` field of its log lines
GRACEFUL_SECONDS = 10


def main() -> None:
    """Serve the Order Service on HOST:PORT with the settings from the environment.

    With WORKERS > 1 this process supervises that many workers on the port and exits with the supervisor's
    status (httpapi.workers); each worker, or the one process with WORKERS=1, serves.
    """
    settings = OrderServiceSettings()
    supervise_if_asked(
        "order_service",
        settings.workers,
        settings.host,
        settings.port,
        ready_path="/health/live",
        # A worker drains for GRACEFUL_SECONDS, then stops its relay and consumer: room for both.
        graceful_seconds=GRACEFUL_SECONDS + 20,
        log_level=settings.log_level,
        log_format=settings.log_format,
        service=SERVICE,
    )
    configure_tracing("order-service")
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        graceful_seconds=GRACEFUL_SECONDS,
        log_format=settings.log_format,
        service=SERVICE,
        sock=adopt_worker_socket(),
        worker_metrics_port=settings.worker_metrics_port,
    )


if __name__ == "__main__":
    main()
