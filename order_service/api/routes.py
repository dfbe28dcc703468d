"""REST endpoints of the Order Service: parse the request, call a use case, represent its result; the use
cases' exceptions become problem+json here (order_service/api/problems.py). Once a request names an order, its
id is bound to the request's log lines (observability.logs.bind_order), the access log line included."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BeforeValidator, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from contract_models.order_api import Order, OrderPage, OrderStatus, Problem
from httpapi.auth import SCOPE_READ, SCOPE_WRITE, Principal, TokenVerifier, requires
from httpapi.disconnect import unless_client_leaves
from httpapi.json_body import DecimalJSONResponse
from httpapi.parameters import JSON_INTEGER, JSON_NUMBER, UUIDParameter
from httpapi.problems import PROBLEM_JSON, ProblemError
from observability.logs import bind_order
from order_service import domain
from order_service.api.cancel_request import parse_cancel_request
from order_service.api.order_request import parse_order_request
from order_service.api.problems import problem_for, schema_refused_response
from order_service.api.representation import order_document, page_document
from order_service.errors import EventSchemaRefused, OrderNotFound, OrderServiceError
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


def _another_customer() -> ProblemError:
    """403 for a request about a customer other than the one the token acts for (httpapi.auth.Principal)."""
    return ProblemError(
        403,
        "Forbidden",
        "The token acts for another customer.",
        [{"field": "customerId", "message": "not the token's customer"}],
    )


WaitFor = Annotated[list[OrderStatus], BeforeValidator(_split_statuses), Field(min_length=1, max_length=5)]


def order_router(service: OrderService, verifier: TokenVerifier | None = None) -> APIRouter:
    """POST /api/orders, GET /api/orders, GET /api/orders/{orderId} and POST /api/orders/{orderId}/cancel,
    served by service. With a verifier (authentication on, httpapi.auth) creating and cancelling need the
    orders:write scope, reading orders:read, and a customer's token acts for its own orders only: another
    customer's order is answered 404, as an unknown one (its existence is not told), an order for another customer
    403."""
    router = APIRouter()
    # Defaults, not annotations: with postponed annotations FastAPI could not resolve a type local to this function.
    reader = Depends(requires(verifier, SCOPE_READ))
    writer = Depends(requires(verifier, SCOPE_WRITE))

    async def owned(order_id: Any, principal: Principal) -> None:
        """Raise 404 unless principal may see the order (before any wait, so waiting tells nothing)."""
        if principal.customer_id is None:
            return
        try:
            order = await service.get(order_id, set(), 0.0)
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        if not principal.may_see(order.customer_id):
            raise problem_for(OrderNotFound(order_id))

    @router.post(
        "/api/orders",
        status_code=201,
        response_model=None,
        responses={
            201: {"model": Order},
            400: PROBLEM,
            401: PROBLEM,
            403: PROBLEM,
            413: PROBLEM,
            415: PROBLEM,
            422: PROBLEM,
            503: PROBLEM,
        },
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
        principal: Principal = writer,
    ) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")
        if len(body) > _INLINE_PARSE_BYTES:  # parsing takes milliseconds: keep the event loop serving others
            order_request = await run_in_threadpool(parse_order_request, body, content_type)
        else:
            order_request = parse_order_request(body, content_type)
        if not principal.may_see(order_request.customer_id):
            raise _another_customer()
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
        responses={200: {"model": OrderPage}, 401: PROBLEM, 403: PROBLEM, 422: PROBLEM},
        operation_id="listOrders",
    )
    async def list_orders(
        customerId: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] = None,
        status: OrderStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=100), JSON_INTEGER] = 20,
        cursor: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
        principal: Principal = reader,
    ) -> Response:
        wanted = domain.OrderStatus(status.value) if status else None
        if principal.customer_id is not None:
            if customerId is not None and customerId != principal.customer_id:
                raise _another_customer()
            customerId = principal.customer_id
        try:
            page = await service.list_orders(customerId, wanted, limit, cursor)
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        return DecimalJSONResponse(page_document(page))

    @router.get(
        "/api/orders/{orderId}",
        response_model=None,
        responses={200: {"model": Order}, 401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
        operation_id="getOrder",
    )
    async def get_order(
        request: Request,
        orderId: UUIDParameter,
        waitFor: Annotated[WaitFor | None, Query()] = None,
        timeout: Annotated[Decimal, Query(ge=0, le=30), JSON_NUMBER] = 0,  # type: ignore[assignment]
        principal: Principal = reader,
    ) -> Response:
        bind_order(orderId)
        await owned(orderId, principal)
        wanted = {domain.OrderStatus(status.value) for status in waitFor or ()}
        try:
            if wanted and timeout > 0:  # a long poll: it ends when its client goes away
                order = await unless_client_leaves(request, service.get(orderId, wanted, float(timeout)))
            else:
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
            401: PROBLEM,
            403: PROBLEM,
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
    async def cancel_order(request: Request, orderId: UUIDParameter, principal: Principal = writer) -> Response:
        reason = parse_cancel_request(await request.body(), request.headers.get("content-type"))
        await owned(orderId, principal)
        try:
            order = await service.cancel(orderId, reason)
        except OrderServiceError as exc:
            raise problem_for(exc) from exc
        return DecimalJSONResponse(order_document(order), status_code=202)

    return router
