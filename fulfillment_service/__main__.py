"""`python -m fulfillment_service`: serve the Fulfillment Service (WORKERS processes on one port, see
httpapi.workers)."""

from __future__ import annotations

from fulfillment_service.app import create_app
from fulfillment_service.settings import FulfillmentServiceSettings
from httpapi.serve import serve
from httpapi.workers import adopt_worker_socket, supervise_if_asked
from observability.tracing import configure_tracing

SERVICE = "fulfillment-service"  # the `service` field of its log lines


def main() -> None:
    """Serve on HOST:PORT until SIGTERM or Ctrl-C, then drain within SHUTDOWN_GRACE_SECONDS.

    With WORKERS > 1 this process supervises that many workers on the port and exits with the supervisor's
    status (httpapi.workers); each worker, or the one process with WORKERS=1, serves.
    """
    settings = FulfillmentServiceSettings()
    graceful_seconds = settings.shutdown_grace_seconds + 5
    supervise_if_asked(
        "fulfillment_service",
        settings.workers,
        settings.host,
        settings.port,
        ready_path="/api/fulfillment/health",
        graceful_seconds=graceful_seconds + 15,  # a worker's own grace period, then its consumer's last commit
        log_level=settings.log_level,
        log_format=settings.log_format,
        service=SERVICE,
    )
    configure_tracing("fulfillment-service")
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        graceful_seconds,
        log_format=settings.log_format,
        service=SERVICE,
        sock=adopt_worker_socket(),
        worker_metrics_port=settings.worker_metrics_port,
    )


if __name__ == "__main__":
    main()
