"""Health endpoints of the Order Service (contract: schemas/openapi/order-service.yaml, operations live and
ready)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from contract_models.order_api import Health
from httpapi.health import dependency_report, overall_status
from httpapi.json_body import DecimalJSONResponse
from messaging.dead_letter import DeadLetterCounts, DeadLetterPublisher
from messaging.health import CachedProbe


def health_router(
    engine: Engine,
    probes: Mapping[str, CachedProbe],
    outbox_backlog: Callable[[], int],
    dead_letters: DeadLetterPublisher | None = None,
) -> APIRouter:
    """GET /health/live (always ok while serving) and GET /health/ready: the database (engine), each probe by
    name, outbox_backlog() (blocking; events not yet published, asked only while the database works) and the
    projection's dead_letters (copies published since start, records in the local spool, counted only while the
    database works). Ready answers 503 when the database is down, 200 otherwise (ok, or degraded with Kafka or
    the registry away)."""
    router = APIRouter()

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
        def check() -> dict[str, Any]:
            deps = dependency_report(engine, dict(probes))
            database_ok = deps["database"]["status"] == "ok"
            body = {
                "status": overall_status(deps),
                "dependencies": deps,
                "outboxBacklog": outbox_backlog() if database_ok else None,
            }
            if dead_letters is not None:
                counts = dead_letters.counts() if database_ok else DeadLetterCounts(dead_letters.published, None)
                body["deadLetters"] = counts.to_json()
            return body

        body = await run_in_threadpool(check)
        return DecimalJSONResponse(body, status_code=503 if body["status"] == "down" else 200)

    return router
