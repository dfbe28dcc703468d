"""REST endpoints of the Order Service: parse the request, call a use case, represent its result; the use
cases' exceptions become problem+json here (order_service/api/problems.py). Once a request names an order, its
id is bound to the request's log lines (observability.logs.bind_order), the access log line included."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BeforeValidator, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from contract_models.order_api import Order, OrderPage, OrderStatus, Problem
from httpapi.json_body import DecimalJSONResponse
from httpapi.parameters import JSON_INTEGER, JSON_NUMBER, UUIDParameter
from httpapi.problems import PROBLEM_JSON
from observability.logs import bind_order
from order_service import domain
from order_service.api.cancel_request import parse_cancel_request
from order_service.api.order_request import parse_order_request
from order_service.api.problems import problem_for, schema_refused_response
from order_service.api.representation import order_document, page_document
from order_service.errors import EventSchemaRefused, OrderServiceError
from order_service.use_cases import OrderService

PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
# Bodies up to this size are parsed on the event loop (microseconds); larger ones on a worker thread.
_INLINE_PARSE_BYTES = 16_384


def _split_statuses(value: Any) -> Any:
    """`waitFor=Pending,Failed` (style form, explode false). `waitFor=` is an empty list, which is refused:
    on the wire it could as well be a list of one empty string."""
    if not isinstance(value, list):
        return value
    parts: list[Any] = []
    for item in value:
        if isinstance(item, str):
            parts.extend(item.split(",") if item else [])
        else:
            parts.append(item)
    return parts


WaitFor = Annotated[list[OrderStatus], BeforeValidator(_split_statuses), Field(min_length=1, max_length=5)]


def order_router(service: OrderService) -> APIRouter:
    """POST /api/orders, GET /api/orders, GET /api/orders/{orderId} and POST /api/orders/{orderId}/cancel,
    served by service."""
    router = APIRouter()

    @router.post(
        "/api/orders",
        status_code=201,
        response_model=None,
        responses={201: {"model": Order}, 400: PROBLEM, 413: PROBLEM, 415: PROBLEM, 422: PROBLEM, 503: PROBLEM},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateOrderRequest"}}},
            }
        },
        operation_id="createOrder",
    )
    async def create_order(
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)] = None,
    ) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")
        if len(body) > _INLINE_PARSE_BYTES:  # parsing takes milliseconds: keep the event loop serving others
            order_request = await run_in_threadpool(parse_order_request, body, content_type)
        else:
            order_request = parse_order_request(body, content_type)
        try:
            order, replayed = await service.place(order_request, idempotency_key)
        except EventSchemaRefused as exc:
            return schema_refused_response(exc, request.url.path)
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        bind_order(order.order_id)  # the rest of the request's lines (its access log line) name the order
        headers = {"Location": f"/api/orders/{order.order_id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return DecimalJSONResponse(order_document(order), status_code=201, headers=headers)

    @router.get(
        "/api/orders",
        response_model=None,
        responses={200: {"model": OrderPage}, 422: PROBLEM},
        operation_id="listOrders",
    )
    async def list_orders(
        customerId: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] = None,
        status: OrderStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=100), JSON_INTEGER] = 20,
        cursor: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    ) -> Response:
        wanted = domain.OrderStatus(status.value) if status else None
        try:
            page = await service.list_orders(customerId, wanted, limit, cursor)
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        return DecimalJSONResponse(page_document(page))

    @router.get(
        "/api/orders/{orderId}",
        response_model=None,
        responses={200: {"model": Order}, 404: PROBLEM, 422: PROBLEM},
        operation_id="getOrder",
    )
    async def get_order(
        orderId: UUIDParameter,
        waitFor: Annotated[WaitFor | None, Query()] = None,
        timeout: Annotated[Decimal, Query(ge=0, le=30), JSON_NUMBER] = 0,  # type: ignore[assignment]
    ) -> Response:
        bind_order(orderId)
        wanted = {domain.OrderStatus(status.value) for status in waitFor or ()}
        try:
            order = await service.get(orderId, wanted, float(timeout))
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        return DecimalJSONResponse(order_document(order))

    @router.post(
        "/api/orders/{orderId}/cancel",
        status_code=202,
        response_model=None,
        responses={
            202: {"model": Order},
            400: PROBLEM,
            404: PROBLEM,
            409: PROBLEM,
            413: PROBLEM,
            415: PROBLEM,
            422: PROBLEM,
        },
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CancelOrderRequest"}}},
            }
        },
        operation_id="cancelOrder",
    )
    async def cancel_order(request: Request, orderId: UUIDParameter) -> Response:
        reason = parse_cancel_request(await request.body(), request.headers.get("content-type"))
        try:
            order = await service.cancel(orderId, reason)
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        return DecimalJSONResponse(order_document(order), status_code=202)

    return router
