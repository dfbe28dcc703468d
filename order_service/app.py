"""The Order Service's FastAPI application: its contract, its routers, and a lifespan that starts and stops
the components bootstrap() wired."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from contract_models.order_api import Problem
from httpapi.app import contract_app, lifespan_of
from httpapi.auth import AuthSettings, TokenVerifier, verifier_from
from observability.metrics import Metrics
from order_service.api import order_router
from order_service.bootstrap import bootstrap
from order_service.health import health_router
from order_service.settings import OrderServiceSettings
from order_service.use_cases import OrderService


def create_app(settings: OrderServiceSettings | None = None, **overrides: Any) -> FastAPI:
    """The app for settings (default: from the environment); overrides replace parts by name, as bootstrap()
    takes them, and `auth` replaces the AuthSettings (default: from the environment, httpapi.auth). Nothing is
    migrated or started until the app's lifespan begins. Raises ValueError naming a missing AUTH_* setting."""
    auth = overrides.pop("auth", None) or AuthSettings()
    verifier = verifier_from(auth)  # before anything starts: a missing setting stops the service at once
    components = bootstrap(settings, **overrides)

    lifespan = lifespan_of(components)

    app = order_api(
        components.service,
        max_body_bytes=components.settings.max_body_bytes,
        lifespan=lifespan,
        metrics=components.metrics,
        verifier=verifier,
    )
    app.include_router(
        health_router(
            components.engine,
            components.probes,
            components.relay.health,
            components.relay.schema_checks,
            components.projection.dead_letters,
            functools.partial(
                components.service.stale_orders, timedelta(seconds=components.settings.stale_order_seconds)
            ),
        )
    )
    return app


def order_api(
    service: OrderService,
    *,
    max_body_bytes: int,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    metrics: Metrics | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """The order API over service: the service's contract, the framing, body limit and problem+json handling
    every request gets, GET /metrics with metrics, and the order routes. create_app() adds health and the
    lifespan; tests of the HTTP edge build this with a service of their own and get exactly what clients get."""
    app = contract_app(
        "Order Service",
        "order-service",
        lifespan,
        max_body_bytes=max_body_bytes,
        asyncapi=True,
        metrics=metrics,
        problem_model=Problem,
    )
    app.include_router(order_router(service, verifier))
    app.state.on_stopping.append(service.release_long_polls)  # long polls end as the server stops
    return app
