"""Health endpoints of the Order Service (contract: schemas/openapi/order-service.yaml, operations live and
ready)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from contract_models.order_api import Health
from httpapi.health import dependency_report, overall_status
from httpapi.json_body import DecimalJSONResponse
from httpapi.pipeline_health import outbox_report, schema_report
from messaging.avro_codec import RegistrationCheck
from messaging.dead_letter import DeadLetterCounts, DeadLetterPublisher
from messaging.health import CachedProbe, refused
from observability.throttled_log import ThrottledLog
from outbox.parking import OutboxHealth

log = logging.getLogger(__name__)


def health_router(
    engine: Engine,
    probes: Mapping[str, CachedProbe],
    outbox: Callable[[], OutboxHealth],
    schema_checks: Callable[[], list[RegistrationCheck]] = list,
    dead_letters: DeadLetterPublisher | None = None,
    stale_orders: Callable[[], Awaitable[tuple[int, timedelta | None]]] | None = None,
) -> APIRouter:
    """GET /health/live (always ok while serving) and GET /health/ready: the database (engine), each probe by
    name, the outbox (outbox(): blocking, asked only while the database works: backlog, oldest unpublished age,
    parked rows), the registry's last word on the event schema (schema_checks()) and the projection's
    dead_letters (copies published since start, records in the local spool, counted only while the database
    works) and stale_orders() (unfinished orders without fulfillment progress: how many, the longest wait).

    Ready answers 503 (`down`) when the database is down or the registry refuses the event schema (no order
    is accepted then), or Kafka or the registry refuses this service's credentials or certificate (the
    dependency's detail names the setting to check; orders are still accepted and their events wait in the
    outbox until the credentials are accepted), 200 otherwise: `degraded` with Kafka or the registry away,
    events parked, the oldest unpublished event older than STALLED_OUTBOX_SECONDS, or orders without progress;
    `ok` otherwise."""
    router = APIRouter()
    failures = ThrottledLog(log)

    @router.get("/health/live", response_model=Health, response_model_exclude_none=True, operation_id="live")
    async def live() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        response_model=None,
        operation_id="ready",
        responses={200: {"model": Health}, 503: {"model": Health}},
    )
    async def ready() -> DecimalJSONResponse:
        stale: tuple[int, timedelta | None] | None = None
        if stale_orders is not None:
            try:
                stale = await stale_orders()
            except Exception as exc:  # the database is away: reported as such below; logged once per interval
                failures.error(type(exc).__name__, "counting orders without progress failed", exc)

        def check() -> dict[str, Any]:
            deps = dependency_report(engine, dict(probes))
            schema = schema_report(schema_checks())
            body: dict[str, Any] = {"dependencies": deps, "outboxBacklog": None, "eventSchema": schema}
            stalled = False
            database_ok = deps["database"]["status"] == "ok"
            if database_ok:
                report = outbox_report(outbox())
                body.update(report.body)
                stalled = report.reason is not None
            if dead_letters is not None:
                counts = dead_letters.counts() if database_ok else DeadLetterCounts(dead_letters.published, None)
                body["deadLetters"] = counts.to_json()
            if stale is not None:
                count, oldest = stale
                body.update(
                    staleOrders=count,
                    oldestStaleOrderSeconds=None if oldest is None else round(oldest.total_seconds(), 1),
                )
                stalled = stalled or count > 0
            status = overall_status(deps, degraded=stalled)
            if schema["status"] == "refused" or refused(probes):
                status = "down"
            return {"status": status, **body}

        body = await run_in_threadpool(check)
        return DecimalJSONResponse(body, status_code=503 if body["status"] == "down" else 200)

    return router
