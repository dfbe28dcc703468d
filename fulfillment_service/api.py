"""REST endpoints of the Fulfillment Service (contract: schemas/openapi/fulfillment-service.yaml)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from contract_models.fulfillment_api import FulfillmentStatus, Problem
from fulfillment_service import store
from fulfillment_service.domain import Fulfillment
from fulfillment_service.shipping import ProviderBehaviour
from httpapi.json_body import DecimalJSONResponse
from httpapi.parameters import UUIDParameter
from httpapi.problems import PROBLEM_JSON, ProblemError

PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def to_api(fulfillment: Fulfillment) -> dict[str, Any]:
    """The FulfillmentStatus body of the contract: camelCase fields, times as ISO 8601 UTC ("...Z")."""
    f = fulfillment
    return {
        "orderId": str(f.order_id),
        "status": f.status.value,
        "trackingNumber": f.tracking_number,
        "carrier": f.carrier,
        "estimatedDelivery": _iso(f.estimated_delivery),
        "failureReason": f.failure_reason,
        "attempts": f.attempts,
        "updatedAt": _iso(f.updated_at),
    }


def fulfillment_router(engine: Engine) -> APIRouter:
    """GET /api/fulfillment/orders/{orderId}: an order's fulfillment read from engine, or a 404 problem."""
    router = APIRouter()

    @router.get(
        "/api/fulfillment/orders/{orderId}",
        response_model=None,
        responses={200: {"model": FulfillmentStatus}, 404: PROBLEM, 422: PROBLEM},
        operation_id="getFulfillment",
    )
    async def get_fulfillment(orderId: UUIDParameter) -> DecimalJSONResponse:
        def read() -> Fulfillment | None:
            with engine.connect() as conn:
                return store.get(conn, orderId)

        fulfillment = await run_in_threadpool(read)
        if fulfillment is None:
            raise ProblemError(
                404,
                "Not Found",
                f"No fulfillment for order {orderId}.",
                [{"field": "orderId", "message": "no such order"}],
            )
        return DecimalJSONResponse(to_api(fulfillment))

    return router


class ProviderControl(BaseModel):
    """Run-time behaviour of the mock shipping provider (only with PROVIDER_CONTROL_ENABLED)."""

    model_config = ConfigDict(extra="forbid")

    failureRate: float | None = Field(None, ge=0, le=1)
    minLatencyMs: int | None = Field(None, ge=0, le=120_000)
    maxLatencyMs: int | None = Field(None, ge=0, le=120_000)


def provider_control_router(behaviour: ProviderBehaviour) -> APIRouter:
    """PUT /admin/provider: changes behaviour (failure rate, latency) of the mock provider at run time."""
    router = APIRouter(include_in_schema=False)

    @router.put("/admin/provider")
    async def set_provider(control: ProviderControl) -> dict[str, Any]:
        if control.failureRate is not None:
            behaviour.failure_rate = control.failureRate
        if control.minLatencyMs is not None:
            behaviour.min_latency_ms = control.minLatencyMs
        if control.maxLatencyMs is not None:
            behaviour.max_latency_ms = control.maxLatencyMs
        return {
            "failureRate": behaviour.failure_rate,
            "minLatencyMs": behaviour.min_latency_ms,
            "maxLatencyMs": behaviour.max_latency_ms,
        }

    return router
