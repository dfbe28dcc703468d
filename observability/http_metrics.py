"""The HTTP side of the metrics: request durations by route template (an ASGI middleware) and GET /metrics.

    app.add_middleware(RequestDurations, metrics=metrics, router=app.router)
    app.include_router(metrics_router(metrics, problem_model))

`orderprocessing_http_server_request_duration_seconds{method, route, status_code}` is the time from the request
reaching the app to the end of its response, long polls included. `route` is the matched route's template
(`/api/orders/{orderId}`), never the raw path, and `unmatched` for a path no route has; `method` is one of
HTTP's standard methods or `other`: every label comes from a bounded set, whatever clients send. `status_code` is
499 for a request whose client went away before its answer (a long poll given up, a body never finished).

`orderprocessing_http_requests_refused_total{reason}` counts the requests refused before they reach the app (and so
in neither the histogram nor the access log): httpapi.slow_clients' reasons, each series present from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from httpapi.problems import PROBLEM_JSON, ProblemError
from observability.metrics import CONTENT_TYPE, REQUEST_BUCKETS, Metrics

METRICS_PATH = "/metrics"
# nginx's status for a request whose client closed the connection before the answer (never sent: nobody reads it).
CLIENT_CLOSED_REQUEST = 499
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})


class RequestDurations:
    """ASGI middleware observing each HTTP request's duration in metrics' request duration histogram.

    router: the app's router, whose routes name the template of a request the routing did not mark (a
    documentation route, or one refused before routing by an outer middleware). Each (method, route, status)
    child of the histogram is looked up once and then kept, so a request allocates no label set.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, router: Router) -> None:
        self.app = app
        self._router = router
        self._histogram = metrics.histogram(
            "http_server_request_duration_seconds",
            "Time from an HTTP request reaching the app to the end of its response, by method, route template and "
            "status code.",
            ["method", "route", "status_code"],
            buckets=REQUEST_BUCKETS,
        )
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await observe_response(self.app, scope, receive, send, self._observe)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        self._child(scope, status).observe(seconds)

    def _child(self, scope: Scope, status: int) -> Any:
        method = scope.get("method", "")
        if method not in _METHODS:
            method = "other"
        key = (method, route_template(scope, self._router.routes), status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._histogram.labels(key[0], key[1], str(status))
        return child


def refusal_counter(metrics: Metrics, reasons: Sequence[str]) -> Callable[[str], None]:
    """A function counting one refused request under its reason (one of reasons) in
    `orderprocessing_http_requests_refused_total{reason}`; every reason's series exists (at 0) from now on."""
    counter = metrics.counter(
        "http_requests_refused_total",
        "HTTP requests refused before reaching the app (malformed, head or body too slow, head too large, over the "
        "connection limit), by reason.",
        ["reason"],
    )
    children = {reason: counter.labels(reason) for reason in reasons}

    def refused(reason: str) -> None:
        children[reason].inc()

    return refused


async def observe_response(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, observe: Callable[[Scope, int, float], None]
) -> None:
    """Run app on an HTTP request, then call observe(scope, status, seconds): the status the client got (500 when
    the app failed before answering; CLIENT_CLOSED_REQUEST when the client went away and the app answered nothing)
    and the seconds from this call to the end of the response (or the failure). An exception of the app goes on
    after observe. What RequestDurations and the access log (httpapi.access_log) both measure."""
    started = time.perf_counter()
    status = 500  # what the client gets when the app fails before answering
    answered = gone = False

    async def observed_send(message: Message) -> None:
        nonlocal status, answered
        if message["type"] == "http.response.start":
            status, answered = message["status"], True
        await send(message)

    async def observed_receive() -> Message:
        nonlocal gone
        message = await receive()
        if message["type"] == "http.disconnect":
            gone = True
        return message

    try:
        await app(scope, observed_receive, observed_send)
        if gone and not answered:
            status = CLIENT_CLOSED_REQUEST
    finally:
        observe(scope, status, time.perf_counter() - started)


def route_template(scope: Scope, routes: list[BaseRoute]) -> str:
    """The path template of the route scope went to (or would go to, for another method), UNMATCHED when none
    has its path. The routing marks API routes in scope["route"]; other routes are matched here."""
    route = scope.get("route")
    if route is None:
        for candidate in routes:
            match, _child_scope = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


def metrics_router(metrics: Metrics, problem_model: Any) -> APIRouter:
    """GET /metrics: every series of metrics in the Prometheus text format 0.0.4 (scrape-time sources are read
    first; concurrent and close scrapes share one rendering, Metrics.scrape), or 404 problem+json (problem_model,
    the service's contract model) while metrics are disabled."""
    router = APIRouter()

    @router.get(
        METRICS_PATH,
        operation_id="metrics",
        response_class=Response,
        responses={
            200: {"model": str, "content": {"text/plain; version=0.0.4": {}}},
            404: {"model": problem_model, "content": {PROBLEM_JSON: {}}},
        },
    )
    async def scrape() -> Response:
        if not metrics.enabled:
            raise ProblemError(404, "Not Found", "Metrics are disabled here (METRICS_ENABLED=false).")
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE)

    return router
