"""REST endpoints of the Order Service (contract: schemas/openapi/order-service.yaml)."""

from __future__ import annotations

import decimal
import time
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from pydantic import BeforeValidator, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from contract_models.order_api import CreateOrderRequest, Order, OrderPage, OrderStatus, Problem
from httpapi.json_body import DecimalJSONResponse, loads
from httpapi.problems import PROBLEM_JSON, ProblemError, validation_errors
from order_service.orders import OrderService
from order_service.status_waiter import StatusWaiter

PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_RECHECK_SECONDS = 0.5  # waiters re-read the database this often (changes applied by other replicas)
# Digits for checking multipleOf 0.01 exactly: enough for any JSON number a double can hold (1.8e308).
_MONEY_DIGITS = 400


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


def parse_order_request(body: bytes, content_type: str | None) -> CreateOrderRequest:
    """Strictly parse a create-order body: JSON only, spec types only, no unknown fields."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ProblemError(
            415,
            "Unsupported Media Type",
            "Send the order as application/json.",
            [{"field": "Content-Type", "message": "must be application/json"}],
        )
    try:
        data = loads(body)
    except ValueError as exc:
        raise ProblemError(
            400,
            "Malformed JSON",
            f"The body is not valid JSON: {exc}",
            [{"field": "body", "message": "not valid JSON"}],
        ) from exc
    _money_as_decimal(data)
    if isinstance(data, dict) and "totalAmount" in data and data["totalAmount"] is None:
        # Optional, but not nullable: the model's `None` default stands for "absent" only.
        raise ProblemError(
            422,
            "Invalid request",
            "The order does not match the API contract.",
            [{"field": "totalAmount", "message": "must be a number"}],
        )
    try:
        # Strict: "2" is not a quantity, 5.0 is not a name; JSON numbers arrive as int or Decimal.
        with decimal.localcontext(prec=_MONEY_DIGITS):
            return CreateOrderRequest.model_validate(data, strict=True)
    except decimal.InvalidOperation as exc:
        raise ProblemError(
            422,
            "Invalid request",
            "A number in the order is out of range.",
            [{"field": "body", "message": "number out of range"}],
        ) from exc
    except ValidationError as exc:
        errors = validation_errors(exc.errors(include_url=False))
        for error in errors:
            if error["message"].startswith("Input should be an instance of Decimal"):
                error["message"] = "must be a number"
            elif error["message"].startswith("String should match pattern"):
                error["message"] = "must contain a non-blank character"  # the only pattern: NonBlankText
        raise ProblemError(422, "Invalid request", "The order does not match the API contract.", errors) from exc


def _money_as_decimal(data: Any) -> None:
    """Whole-number prices parse as int; money fields take Decimal, so lift them (bools stay invalid).

    The reverse for quantities: JSON Schema counts 3.0 or 1e2 as an integer, so integral numbers with a
    fraction or exponent become int.
    """
    if not isinstance(data, dict):
        return
    if type(data.get("totalAmount")) is int:
        data["totalAmount"] = Decimal(data["totalAmount"])
    items = data.get("items")
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            if type(item.get("price")) is int:
                item["price"] = Decimal(item["price"])
            quantity = item.get("quantity")
            if type(quantity) is Decimal and quantity.is_finite() and quantity == quantity.to_integral_value():
                item["quantity"] = int(quantity)


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
        order_request = parse_order_request(await request.body(), request.headers.get("content-type"))
        order, replayed = await service.place(order_request, idempotency_key)
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
        customerId: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        status: OrderStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    ) -> Response:
        page = await run_in_threadpool(service.list, customerId, status.value if status else None, limit, cursor)
        return DecimalJSONResponse(page)

    @router.get(
        "/api/orders/{orderId}",
        response_model=None,
        responses={200: {"model": Order}, 404: PROBLEM, 422: PROBLEM},
        operation_id="getOrder",
    )
    async def get_order(
        orderId: UUID,
        waitFor: Annotated[WaitFor | None, Query()] = None,
        timeout: Annotated[float, Query(ge=0, le=30)] = 0,
    ) -> Response:
        wanted = {status.value for status in waitFor or ()}
        order_id = str(orderId)
        deadline = time.monotonic() + (timeout if wanted else 0)
        while True:
            order = await run_in_threadpool(service.get, order_id)
            if order is None:
                raise ProblemError(
                    404, "Not Found", f"No order {order_id}.", [{"field": "orderId", "message": "no such order"}]
                )
            remaining = deadline - time.monotonic()
            if not wanted or order["status"] in wanted or remaining <= 0:
                return DecimalJSONResponse(order)
            await waiter.wait(order_id, min(remaining, _RECHECK_SECONDS))

    return router
