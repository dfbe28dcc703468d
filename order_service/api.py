"""REST endpoints of the Order Service (contract: schemas/openapi/order-service.yaml)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BeforeValidator, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from contract_models.order_api import Order, OrderPage, OrderStatus, Problem
from contracts.order_rules import ValidOrder, validate_order
from contracts.violation import RuleViolation
from httpapi import strict_json
from httpapi.json_body import DecimalJSONResponse
from httpapi.parameters import JSON_INTEGER, JSON_NUMBER, UUIDParameter
from httpapi.problems import PROBLEM_JSON, ProblemError
from messaging.avro_codec import UnencodableEvent
from order_service import domain
from order_service.errors import EventTooLarge, IdempotencyKeyReused, InvalidCursor
from order_service.orders import OrderService
from order_service.status_waiter import StatusWaiter

PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_RECHECK_SECONDS = 0.5  # waiters re-read the database this often (changes applied by other replicas)
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


WaitFor = Annotated[list[OrderStatus], BeforeValidator(_split_statuses), Field(min_length=1, max_length=4)]


def parse_order_request(body: bytes, content_type: str | None) -> ValidOrder:
    """Parse a create-order body exactly as the contract says: JSON only (I-JSON, numbers bounded before
    conversion, see httpapi.strict_json), spec types only, no unknown fields, the order rules.

    Raises ProblemError: 415 for another media type, 400 for a body that is not I-JSON, 413 for one with
    more values than any order holds, 422 naming each field that breaks the rules.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ProblemError(
            415,
            "Unsupported Media Type",
            "Send the order as application/json.",
            [{"field": "Content-Type", "message": "must be application/json"}],
        )
    try:
        document = strict_json.parse(body)
    except strict_json.MalformedJSON as exc:
        raise ProblemError(
            400,
            "Malformed JSON",
            f"The body is not valid JSON: {exc}",
            [{"field": "body", "message": "not valid JSON"}],
        ) from exc
    except strict_json.TooManyValues as exc:
        raise ProblemError(
            413, "Content Too Large", f"{exc}; an order holds far fewer.", [{"field": "body", "message": str(exc)}]
        ) from exc
    try:
        return validate_order(document)
    except RuleViolation as exc:
        raise ProblemError(422, "Invalid request", exc.detail, list(exc.errors)) from exc


def order_router(service: OrderService, waiter: StatusWaiter) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/api/orders",
        status_code=201,
        response_model=None,
        responses={201: {"model": Order}, 400: PROBLEM, 413: PROBLEM, 415: PROBLEM, 422: PROBLEM},
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
        except IdempotencyKeyReused as exc:
            raise ProblemError(
                422,
                "Idempotency-Key reused",
                "This Idempotency-Key was used with a different order.",
                [{"field": "Idempotency-Key", "message": "already used with a different order"}],
            ) from exc
        except EventTooLarge as exc:
            raise ProblemError(413, "Content Too Large", f"{exc}.", [{"field": "body", "message": str(exc)}]) from exc
        except UnencodableEvent as exc:
            raise ProblemError(
                422,
                "Invalid request",
                "The order cannot be written as an event.",
                [{"field": "body", "message": str(exc)}],
            ) from exc
        headers = {"Location": f"/api/orders/{order['orderId']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return DecimalJSONResponse(order, status_code=201, headers=headers)

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
        try:
            wanted = domain.OrderStatus(status.value) if status else None
            page = await run_in_threadpool(service.list, customerId, wanted, limit, cursor)
        except InvalidCursor as exc:
            raise ProblemError(
                422,
                "Invalid request",
                "cursor is not one this service handed out.",
                [{"field": "cursor", "message": "invalid cursor"}],
            ) from exc
        return DecimalJSONResponse(page)

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
        wanted = {status.value for status in waitFor or ()}
        deadline = time.monotonic() + (float(timeout) if wanted else 0)
        while True:
            order = await run_in_threadpool(service.get, orderId)
            if order is None:
                raise ProblemError(
                    404, "Not Found", f"No order {orderId}.", [{"field": "orderId", "message": "no such order"}]
                )
            remaining = deadline - time.monotonic()
            if not wanted or order["status"] in wanted or remaining <= 0:
                return DecimalJSONResponse(order)
            await waiter.wait(orderId, min(remaining, _RECHECK_SECONDS))

    return router
