"""The Order Service's FastAPI application: its contract, its routers, and a lifespan that starts and stops
the components bootstrap() wired."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from httpapi.app import contract_app
from order_service.api import order_router
from order_service.bootstrap import bootstrap
from order_service.health import health_router
from order_service.settings import OrderServiceSettings


def create_app(settings: OrderServiceSettings | None = None, **overrides: Any) -> FastAPI:
    """The app for settings (default: from the environment); overrides replace parts by name, as bootstrap()
    takes them. Nothing is migrated or started until the app's lifespan begins."""
    components = bootstrap(settings, **overrides)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await components.start()
        try:
            yield
        finally:
            await components.stop()

    app = contract_app(
        "Order Service",
        "order-service",
        lifespan,
        max_body_bytes=components.settings.max_body_bytes,
        asyncapi=True,
    )
    app.include_router(order_router(components.service))
    app.include_router(
        health_router(
            components.engine, components.probes, components.relay.backlog, components.projection.dead_letters
        )
    )
    return app
