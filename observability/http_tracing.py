"""A server span for every HTTP request (an ASGI middleware), continuing the caller's W3C trace context.

    app.add_middleware(TraceRequests, router=app.router)

An own middleware rather than opentelemetry-instrumentation-asgi: the services need one span per request named
by its route template, the W3C propagator whatever OTEL_PROPAGATORS says, and nothing else (that package adds
spans per `http.send`/`http.receive` message, which a long poll or a large body multiplies); this is the
few lines that do exactly that, with the route template the metrics use (observability.http_metrics).

The span (kind SERVER) is named `<METHOD> <route template>` (`POST /api/orders`), as the OpenTelemetry HTTP
semantic conventions name server spans, and continues the request's `traceparent`/`tracestate` headers, or
starts a new trace without a valid one. It is the current span while the app handles the request, so what the
request writes (an outbox row) captures it. Attributes: http.request.method, http.route, url.path,
http.response.status_code; a 5xx answer or an exception marks it as an error. No `traceparent` goes back in the
response: W3C Trace Context defines none for responses (its `traceresponse` is a draft), and the contract
documents every response header.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.http_metrics import UNMATCHED, route_template
from observability.trace_context import FIELDS, from_headers

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})
_FIELDS = frozenset(name.encode() for name in FIELDS)


class TraceRequests:
    """ASGI middleware making a server span per HTTP request (see the module docstring).

    router: the app's router, for the route template of requests the routing did not mark; tracer: where spans
    are made (default: the global provider's tracer for this module).
    """

    def __init__(self, app: ASGIApp, router: Router, tracer: Tracer | None = None) -> None:
        self.app = app
        self._router = router
        self._tracer = tracer or trace.get_tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "")
        if method not in _METHODS:
            method = "_OTHER"  # the semantic conventions' name for a method outside the known set
        fields = [(name.decode("latin-1"), value) for name, value in scope.get("headers", ()) if name in _FIELDS]
        parent = from_headers(fields)
        status = 500  # what the client gets when the app fails before answering

        async def traced_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self._tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:
            try:
                await self.app(scope, receive, traced_send)
            finally:
                if span.is_recording():
                    route = route_template(scope, self._router.routes)
                    if route != UNMATCHED:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
