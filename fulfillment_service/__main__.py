"""`python -m fulfillment_service`: serve the Fulfillment Service."""

from __future__ import annotations

import logging
import signal

import uvicorn

from fulfillment_service.app import create_app
from fulfillment_service.settings import FulfillmentServiceSettings


def main() -> None:
    settings = FulfillmentServiceSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn re-raises SIGTERM once it has shut down gracefully; a no-op handler turns that into exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )


if __name__ == "__main__":
    main()
