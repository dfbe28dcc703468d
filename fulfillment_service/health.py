"""The health endpoint of the Fulfillment Service (contract: schemas/openapi/fulfillment-service.yaml,
operation fulfillmentHealth)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from contract_models.fulfillment_api import Health
from fulfillment_service.resilience import CircuitBreaker
from httpapi.health import dependency_report, overall_status
from httpapi.json_body import DecimalJSONResponse
from messaging.consumer.runtime import ConsumerRuntime
from messaging.dead_letter import DeadLetterCounts
from messaging.health import CachedProbe


def health_router(
    engine: Engine, probes: Mapping[str, CachedProbe], breaker: CircuitBreaker, intake: ConsumerRuntime
) -> APIRouter:
    """GET /api/fulfillment/health: the database (engine) and each probe by name, the breaker's state, the
    intake consumer's lag and in-flight orders, and its dead letters (published since start, held in the local
    spool). 503 when the database is down; degraded while the breaker is not closed or a probe fails."""
    router = APIRouter()

    @router.get(
        "/api/fulfillment/health",
        response_model=None,
        operation_id="fulfillmentHealth",
        responses={200: {"model": Health}, 503: {"model": Health}},
    )
    async def health() -> DecimalJSONResponse:
        deps = await run_in_threadpool(dependency_report, engine, dict(probes))
        dead_letters = intake.dead_letters
        if deps["database"]["status"] == "ok":
            counts = await run_in_threadpool(dead_letters.counts)
        else:  # the spool is in the database: not asked while it fails
            counts = DeadLetterCounts(dead_letters.published, None)
        status = overall_status(deps, degraded=breaker.state != "closed")
        body = {
            "status": status,
            "dependencies": deps,
            "breaker": breaker.state.value,
            "consumerLag": intake.lag(),
            "inFlight": intake.in_flight,
            "deadLetters": counts.to_json(),
        }
        return DecimalJSONResponse(body, status_code=503 if status == "down" else 200)

    return router
