"""The FastAPI application both services start from: their committed contract, problem+json errors,
exact decimals in JSON, a request body limit and the access log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from httpapi.access_log import AccessLog
from httpapi.body_limit import BodyLimitMiddleware
from httpapi.error_boundary import ErrorBoundary
from httpapi.json_body import DecimalJSONResponse
from httpapi.openapi import serve_contract
from httpapi.problems import install_problem_handlers
from httpapi.request_framing import RequestFraming
from httpapi.slow_clients import REFUSAL_REASONS
from observability.http_metrics import RequestDurations, metrics_router, refusal_counter
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
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """A FastAPI app serving schemas/openapi/<contract>.yaml (and the AsyncAPI document when asyncapi).

    Bodies over max_body_bytes get 413, framing the service refuses 400/415/501, every error problem+json,
    and JSON responses keep Decimal exact; lifespan is the service's start-up and shutdown (None: nothing to start).
    With metrics, GET /metrics serves them (a 404 problem, of the contract's problem_model, while they are
    disabled) and, while they are enabled, every request's duration is observed (observability.http_metrics);
    `app.state.refused_requests` is then the function counting requests refused before the app
    (httpapi.serve hands it to the protocol, httpapi.slow_clients), and `app.state.metrics` the metrics.
    Every request is written to the access log (httpapi.access_log). `app.state.on_stopping` is a list of functions
    httpapi.serve calls when the server stops taking connections, before it waits for requests in flight (a
    service adds what lets long-waiting requests finish at once).

    Every request gets a server span from FastAPI's own OpenTelemetry support (no instrumentation package, and no
    middleware of ours that would make a second one): kind SERVER, named `<METHOD> <route template>`
    (`POST /api/orders`), continuing the request's W3C `traceparent`/`tracestate` (the global propagator:
    W3C Trace Context only and bounded, unless OTEL_PROPAGATORS names others, observability.tracing; no baggage
    is read) or starting a new trace, current while the app
    handles the request (so an outbox row written then captures it), an error for a 5xx answer or an exception.
    It works once a TracerProvider is set, globally (observability.tracing.configure_tracing) or as
    tracer_provider, and spans go wherever that provider exports them. FastAPI's spans of dependency resolution,
    endpoint and serialisation are off (three more spans per request, for little: the request's own duration is
    in its span), as are its OpenTelemetry metrics (the service's are Prometheus', observability.metrics), its
    OpenTelemetry log records (looked up per request; the service's log is observability.logs) and its
    exporter set-up from the environment (observability.tracing owns it). No `traceparent` goes back in the
    response: W3C Trace Context defines none for responses (`traceresponse` is a draft), and the contract
    documents every response header.
    """
    # No redirect to the slash-less path: it would echo the client's Host header into Location.
    app = FastAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        default_response_class=DecimalJSONResponse,
        redirect_slashes=False,
        telemetry={
            "tracer_provider": tracer_provider,
            "tracing": True,
            "operation_spans": False,
            "metrics": False,
            "logs": False,  # OpenTelemetry log records of exceptions: the service's log has them (observability.logs)
            "auto_configure": False,
        },
    )
    app.state.on_stopping = []
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestFraming)
    app.add_middleware(ErrorBoundary)  # outermost of ours: answers what escapes everything else
    if metrics is not None:
        if metrics.enabled:  # outside the error boundary: it sees the status the client gets
            app.add_middleware(RequestDurations, metrics=metrics, router=app.router)
        app.include_router(metrics_router(metrics, problem_model))
        app.state.refused_requests = refusal_counter(metrics, REFUSAL_REASONS)
        app.state.metrics = metrics
    app.add_middleware(AccessLog, router=app.router)  # outermost: the status and time the client got
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
