"""The FastAPI application both services start from: their committed contract, problem+json errors,
exact decimals in JSON and a request body limit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import FastAPI

from httpapi.body_limit import BodyLimitMiddleware
from httpapi.error_boundary import ErrorBoundary
from httpapi.json_body import DecimalJSONResponse
from httpapi.openapi import serve_contract
from httpapi.problems import install_problem_handlers
from httpapi.request_framing import RequestFraming
from observability.http_metrics import RequestDurations, metrics_router
from observability.http_tracing import TraceRequests
from observability.metrics import Metrics


def contract_app(
    title: str,
    contract: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
    *,
    max_body_bytes: int,
    asyncapi: bool = False,
    metrics: Metrics | None = None,
    problem_model: Any = None,
) -> FastAPI:
    """A FastAPI app serving schemas/openapi/<contract>.yaml (and the AsyncAPI document when asyncapi).

    Bodies over max_body_bytes get 413, framing the service refuses 400/415/501, every error problem+json,
    and JSON responses keep Decimal exact; lifespan is the service's start-up and shutdown (None: nothing to start).
    With metrics, GET /metrics serves them (a 404 problem, of the contract's problem_model, while they are
    disabled) and, while they are enabled, every request's duration is observed (observability.http_metrics).
    Every request gets a server span continuing its W3C trace context (observability.http_tracing).
    """
    # No redirect to the slash-less path: it would echo the client's Host header into Location.
    app = FastAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        default_response_class=DecimalJSONResponse,
        redirect_slashes=False,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestFraming)
    app.add_middleware(ErrorBoundary)  # outermost of ours: answers what escapes everything else
    if metrics is not None:
        if metrics.enabled:  # outside the error boundary: it sees the status the client gets
            app.add_middleware(RequestDurations, metrics=metrics, router=app.router)
        app.include_router(metrics_router(metrics, problem_model))
    app.add_middleware(TraceRequests, router=app.router)  # outermost: the request's span is current throughout
    install_problem_handlers(app)
    serve_contract(app, contract, asyncapi=asyncapi)
    return app


class Startable(Protocol):
    """A service's wired components: started when the app starts serving, stopped when it ends."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def lifespan_of(components: Startable) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app lifespan that starts components before serving and stops them after (also when serving fails)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await components.start()
        try:
            yield
        finally:
            await components.stop()

    return lifespan
