"""`python -m order_service`: serve the Order Service."""

from __future__ import annotations

from httpapi.serve import serve
from observability.tracing import configure_tracing
from order_service.app import create_app
from order_service.settings import OrderServiceSettings

SERVICE = "order-service"  # the `service` field of its log lines


def main() -> None:
    """Serve the Order Service on HOST:PORT with the settings from the environment."""
    configure_tracing("order-service")
    settings = OrderServiceSettings()
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        graceful_seconds=10,
        log_format=settings.log_format,
        service=SERVICE,
    )


if __name__ == "__main__":
    main()
