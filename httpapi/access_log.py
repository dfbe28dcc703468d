"""The access log: one line per HTTP request, with its route template, status and duration.

    app.add_middleware(AccessLog, router=app.router)

Each request is logged at INFO by the logger `httpapi.access` once its response has ended (or the app failed),
as `POST /api/orders 201` with the fields `method`, `route` (the route template, `/api/orders/{orderId}`, never
the raw path, `unmatched` for a path no route has: observability.http_metrics.route_template), `status` (what
the client got; 500 when the app failed before answering, 499 when the client went away before its answer),
`duration_ms` and `client` (`host:port` of the peer).
Requests to the probes (PROBE_ROUTES: health and metrics, polled every few seconds) are logged at DEBUG, so
they do not drown the rest. A line carries what the request bound meanwhile (an order's `orderId`), since the
app runs in the middleware's task.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from observability.http_metrics import METRICS_PATH, observe_response, route_template

log = logging.getLogger("httpapi.access")

# What load balancers, orchestrators and Prometheus poll: both services' health endpoints and /metrics.
PROBE_ROUTES = frozenset({"/health/live", "/health/ready", "/api/fulfillment/health", METRICS_PATH})


class AccessLog:
    """ASGI middleware writing the access log (see the module docstring). router: the app's router, whose
    routes name a request's template; probe_routes: the route templates logged at DEBUG."""

    def __init__(self, app: ASGIApp, router: Router, probe_routes: Collection[str] = PROBE_ROUTES) -> None:
        self.app = app
        self._router = router
        self._probes = frozenset(probe_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):  # nothing would be written
            await self.app(scope, receive, send)
            return
        await observe_response(self.app, scope, receive, send, self._log)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope, self._router.routes)
        level = logging.DEBUG if route in self._probes else logging.INFO
        if not log.isEnabledFor(level):
            return
        method = scope.get("method", "")
        client = scope.get("client")
        log.log(
            level,
            "%s %s %d",
            method,
            route,
            status,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )
