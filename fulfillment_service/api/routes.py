"""REST endpoints of the Fulfillment Service: call a use case, represent its result; the use cases' exceptions
become problem+json here (fulfillment_service/api/problems.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from contract_models.fulfillment_api import FulfillmentStatus, Problem
from fulfillment_service.api.problems import problem_for
from fulfillment_service.api.representation import fulfillment_document
from fulfillment_service.errors import FulfillmentServiceError
from fulfillment_service.queries import FulfillmentQueries
from fulfillment_service.shipping import ProviderBehaviour
from httpapi.auth import SCOPE_OPERATOR, Principal, TokenVerifier, requires
from httpapi.json_body import DecimalJSONResponse
from httpapi.parameters import UUIDParameter
from httpapi.problems import PROBLEM_JSON

PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}


def fulfillment_router(queries: FulfillmentQueries, verifier: TokenVerifier | None = None) -> APIRouter:
    """GET /api/fulfillment/orders/{orderId}: an order's fulfillment read by queries, or a 404 problem. With a
    verifier (authentication on, httpapi.auth) it needs the operator scope."""
    router = APIRouter()
    operator = Depends(requires(verifier, SCOPE_OPERATOR))  # a default: a local type is not resolvable

    @router.get(
        "/api/fulfillment/orders/{orderId}",
        response_model=None,
        responses={200: {"model": FulfillmentStatus}, 401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
        operation_id="getFulfillment",
    )
    async def get_fulfillment(orderId: UUIDParameter, _: Principal = operator) -> DecimalJSONResponse:
        try:
            fulfillment = await queries.get(orderId)
        except FulfillmentServiceError as exc:
            raise problem_for(exc) from exc
        return DecimalJSONResponse(fulfillment_document(fulfillment))

    return router


class ProviderControl(BaseModel):
    """Run-time behaviour of the mock shipping provider (only with PROVIDER_CONTROL_ENABLED)."""

    model_config = ConfigDict(extra="forbid")

    failureRate: float | None = Field(None, ge=0, le=1)
    minLatencyMs: int | None = Field(None, ge=0, le=120_000)
    maxLatencyMs: int | None = Field(None, ge=0, le=120_000)


def provider_control_router(behaviour: ProviderBehaviour, verifier: TokenVerifier | None = None) -> APIRouter:
    """PUT /admin/provider: changes behaviour (failure rate, latency) of the mock provider at run time; with a
    verifier it needs the operator scope."""
    router = APIRouter(include_in_schema=False)
    operator = Depends(requires(verifier, SCOPE_OPERATOR))  # a default: a local type is not resolvable

    @router.put("/admin/provider")
    async def set_provider(control: ProviderControl, _: Principal = operator) -> dict[str, Any]:
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
