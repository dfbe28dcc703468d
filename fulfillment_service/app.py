"""The Fulfillment Service's FastAPI application: its contract, its routers, and a lifespan that starts and
stops the components bootstrap() wired."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from contract_models.fulfillment_api import Problem
from fulfillment_service.api import fulfillment_router, provider_control_router
from fulfillment_service.bootstrap import bootstrap
from fulfillment_service.health import health_router
from fulfillment_service.settings import FulfillmentServiceSettings
from httpapi.app import contract_app, lifespan_of
from httpapi.auth import AuthSettings, verifier_from


def create_app(settings: FulfillmentServiceSettings | None = None, **overrides: Any) -> FastAPI:
    """The app for settings (default: from the environment); overrides replace parts by name, as bootstrap()
    takes them, and `auth` replaces the AuthSettings (default: from the environment, httpapi.auth). Nothing is
    migrated or started until the app's lifespan begins. Raises ValueError naming a missing AUTH_* setting."""
    auth = overrides.pop("auth", None) or AuthSettings()
    verifier = verifier_from(auth)  # before anything starts: a missing setting stops the service at once
    components = bootstrap(settings, **overrides)

    lifespan = lifespan_of(components)

    app = contract_app(
        "Fulfillment Service",
        "fulfillment-service",
        lifespan,
        max_body_bytes=1_048_576,
        metrics=components.metrics,
        problem_model=Problem,
    )
    app.include_router(fulfillment_router(components.queries, verifier))
    app.include_router(
        health_router(
            components.engine,
            components.probes,
            components.breaker,
            components.intake,
            components.progress,
            outbox=components.relay.health,
            schema_checks=components.relay.schema_checks,
        )
    )
    if components.settings.provider_control_enabled:
        app.include_router(provider_control_router(components.behaviour, verifier))
    return app
