"""`python -m fulfillment_service`: serve the Fulfillment Service."""

from __future__ import annotations

from fulfillment_service.app import create_app
from fulfillment_service.settings import FulfillmentServiceSettings
from httpapi.serve import serve
from observability.tracing import configure_tracing

SERVICE = "fulfillment-service"  # the `service` field of its log lines


def main() -> None:
    """Serve on HOST:PORT until SIGTERM or Ctrl-C, then drain within SHUTDOWN_GRACE_SECONDS."""
    configure_tracing("fulfillment-service")
    settings = FulfillmentServiceSettings()
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        settings.shutdown_grace_seconds + 5,
        log_format=settings.log_format,
        service=SERVICE,
    )


if __name__ == "__main__":
    main()
