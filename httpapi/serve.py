"""Runs a service under uvicorn the same way for both services."""

from __future__ import annotations

import logging
import signal

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int, log_level: str, graceful_seconds: float) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call otherwise
    # uvicorn re-raises SIGTERM once it has shut down gracefully; a no-op handler turns that into exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=int(graceful_seconds),
    )
