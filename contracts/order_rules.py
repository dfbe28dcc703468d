"""The order rules: what an order must be to be accepted by the Order Service and shipped by the
Fulfillment Service.

Shapes and bounds are the Order Service's OpenAPI document (`CreateOrderRequest`, generated into
`contract_models.order_api`): texts of 1-200 characters with a non-blank one and no NUL, 1-1,000 items,
quantity 1-10,000, price 0-1,000,000 as a multiple of 0.01, an optional totalAmount, an optional shippingAddress
(recipient, 1-3 address lines, a city of 1-100 characters, a postal code of 1-20 letters, digits, spaces and
hyphens, an assigned ISO 3166-1 alpha-2 country in upper case). This module adds what JSON Schema cannot say:

* totalAmount, when given, equals the sum of quantity * price;
* texts are trimmed of surrounding blanks (the blanks the schema's pattern names, which are Python's), the
  postal code of surrounding spaces;
* totalAmount and shippingAddress are optional but not nullable: `null` is refused like any other wrong type;
* money is held at the contract's scale of 2 decimals (19.990 is 19.99, -0.00 is 0.00), which Avro's
  decimal(12,2) and decimal(18,2) require: an order that passes always encodes;
* numbers are compared and summed in `MONEY_CONTEXT`, with every trap on and room for every bounded input
  (`contracts.number_bounds` bounds what a request can carry), so no arithmetic on an order overflows, rounds
  silently or raises anything but a RuleViolation.

`validate_order()` is the API's check of a request body; `check_order_created()` applies the same rules to an
`OrderCreated` event and also requires the event to be exactly what `validate_order()` would produce.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from contract_models.events import OrderCancelled, OrderCreated
from contract_models.order_api import CountryCode, CreateOrderRequest
from contract_models.order_api import ShippingAddress as AddressModel
from contracts.number_bounds import MAX_MAGNITUDE, MAX_SIGNIFICANT_DIGITS, MIN_MAGNITUDE, UnrepresentableNumber
from contracts.violation import FieldError, RuleViolation, field_path

MONEY_SCALE = Decimal("0.01")
# Bounded inputs have at most 40 digits and magnitudes from 1e-400 to 1e40; a remainder modulo 0.01 then needs
# about 83 digits, and no result leaves the exponent range. Every condition traps, so nothing is rounded or
# clamped without being noticed.
MONEY_CONTEXT = decimal.Context(
    prec=120,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999,
    Emax=999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Underflow, decimal.Clamped],
)
_INVALID_REQUEST = "The order does not match the API contract."


@dataclass(frozen=True)
class OrderLine:
    """One accepted line: trimmed texts, quantity 1-10,000, unit price at scale 2."""

    product_id: str
    product_name: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class Address:
    """A shipping address that keeps the rules: trimmed texts (recipient and lines 1-200 characters, city
    1-100), 1-3 address lines, a postal code of 1-20 ASCII letters, digits, spaces and hyphens, and country an
    assigned ISO 3166-1 alpha-2 code in upper case ("DE")."""

    recipient_name: str
    address_lines: tuple[str, ...]
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True)
class ValidOrder:
    """An order that keeps every rule: trimmed texts, money at scale 2, total = sum of the lines; where it
    ships (None: no address was given)."""

    customer_id: str
    customer_name: str
    lines: tuple[OrderLine, ...]
    total: Decimal
    shipping_address: Address | None = None


def order_total(lines: Iterable[tuple[int, Decimal]]) -> Decimal:
    """Sum of quantity * price over (quantity, price) pairs, at scale 2. Raises decimal.DecimalException
    only for inputs beyond the rules' bounds."""
    with decimal.localcontext(MONEY_CONTEXT):
        return sum((price * quantity for quantity, price in lines), Decimal(0)).quantize(MONEY_SCALE)


def to_scale(*amounts: Decimal) -> list[Decimal]:
    """The amounts at the contract's scale of 2; zero without a sign. Exact for multiples of 0.01 (raises
    decimal.Inexact through the traps otherwise, which validation rules out first)."""
    with decimal.localcontext(MONEY_CONTEXT) as context:
        context.traps[decimal.Inexact] = True
        scaled = [amount.quantize(MONEY_SCALE) for amount in amounts]
    return [amount.copy_abs() if amount.is_zero() else amount for amount in scaled]


def validate_order(document: Any) -> ValidOrder:
    """The order a parsed create-order body describes (dicts, lists, str, int, Decimal, as
    `httpapi.strict_json.parse` returns them).

    Strict: "2" is not a quantity and 5.0 is not a name. JSON Schema counts 3.0 and 1e2 as integers, so an
    integral Decimal quantity becomes an int; an integer price or total becomes a Decimal.
    Raises RuleViolation naming each offending field.
    """
    prepared = _with_country_code(_with_json_number_types(document))
    if isinstance(prepared, dict):
        # Optional, but not nullable: the model's `None` default stands for "absent" only.
        nulls: list[FieldError] = [
            {"field": name, "message": message}
            for name, message in (("totalAmount", "must be a number"), ("shippingAddress", "must be an object"))
            if name in prepared and prepared[name] is None
        ]
        if nulls:
            raise RuleViolation(_INVALID_REQUEST, nulls)
    try:
        with decimal.localcontext(MONEY_CONTEXT):
            request = CreateOrderRequest.model_validate(prepared, strict=True)
    except ValidationError as exc:
        raise RuleViolation(_INVALID_REQUEST, _field_errors(exc)) from exc
    except decimal.DecimalException as exc:  # bounded inputs never get here; a violation all the same
        raise RuleViolation(_INVALID_REQUEST, [{"field": "body", "message": "a number is out of range"}]) from exc
    prices = to_scale(*(item.price for item in request.items))
    lines = tuple(
        OrderLine(item.productId.root.strip(), item.productName.root.strip(), item.quantity, price)
        for item, price in zip(request.items, prices, strict=True)
    )
    total = order_total((line.quantity, line.price) for line in lines)
    if request.totalAmount is not None and to_scale(request.totalAmount)[0] != total:
        raise RuleViolation(
            "totalAmount does not match the items.",
            [{"field": "totalAmount", "message": f"expected {total}, the sum of quantity * price"}],
        )
    address = None if request.shippingAddress is None else _address(request.shippingAddress)
    return ValidOrder(request.customerId.root.strip(), request.customerName.root.strip(), lines, total, address)


def _address(model: AddressModel) -> Address:
    return Address(
        recipient_name=model.recipientName.root.strip(),
        address_lines=tuple(line.root.strip() for line in model.addressLines),
        city=model.city.root.strip(),
        postal_code=model.postalCode.root.strip(" "),
        country=model.country.value,
    )


def address_from_document(document: Mapping[str, Any]) -> Address:
    """The Address an address_document() holds, as it was written (nothing is checked again). Raises KeyError
    for a document without one of its keys."""
    return Address(
        recipient_name=document["recipientName"],
        address_lines=tuple(document["addressLines"]),
        city=document["city"],
        postal_code=document["postalCode"],
        country=document["country"],
    )


def address_document(address: Address) -> dict[str, Any]:
    """The address in the contracts' camelCase shape (the API's and OrderCreated's ShippingAddress)."""
    return {
        "recipientName": address.recipient_name,
        "addressLines": list(address.address_lines),
        "city": address.city,
        "postalCode": address.postal_code,
        "country": address.country,
    }


def check_order_created(event: OrderCreated) -> None:
    """Raises RuleViolation unless event is an order the Order Service could have accepted, exactly as it
    would have written it: the rules above, eventType "OrderCreated", ids that are not the nil UUID, texts
    already trimmed and the total already computed."""
    errors: list[FieldError] = []
    if event.eventType != "OrderCreated":
        errors.append({"field": "eventType", "message": f"must be OrderCreated, not {event.eventType[:50]!r}"})
    for name in ("eventId", "orderId"):
        if getattr(event, name).int == 0:
            errors.append({"field": name, "message": "must not be the nil UUID"})
    document = {
        "customerId": event.customerId,
        "customerName": event.customerName,
        "items": [
            {"productId": i.productId, "productName": i.productName, "quantity": i.quantity, "price": i.price}
            for i in event.items
        ],
        "totalAmount": event.totalAmount,
    }
    if event.shippingAddress is not None:
        document["shippingAddress"] = event.shippingAddress.model_dump()
    try:
        order = validate_order(document)
    except RuleViolation as exc:
        errors.extend(exc.errors)
    else:
        sent = (
            event.customerId,
            event.customerName,
            [(i.productId, i.productName) for i in event.items],
            None if event.shippingAddress is None else event.shippingAddress.model_dump(),
        )
        normal = (
            order.customer_id,
            order.customer_name,
            [(x.product_id, x.product_name) for x in order.lines],
            None if order.shipping_address is None else address_document(order.shipping_address),
        )
        if sent != normal:
            errors.append({"field": "body", "message": "texts must be trimmed of surrounding blanks"})
    if errors:
        raise RuleViolation("The OrderCreated event breaks the order rules.", errors)


def _with_json_number_types(document: Any) -> Any:
    """A shallow copy of the body with JSON Schema's number semantics applied to the numeric fields."""
    if not isinstance(document, dict):
        return document
    prepared = dict(document)
    if type(prepared.get("totalAmount")) is int:
        prepared["totalAmount"] = Decimal(prepared["totalAmount"])
    items = prepared.get("items")
    if isinstance(items, list):
        prepared["items"] = [_item_with_json_number_types(item) for item in items]
    return prepared


def _with_country_code(document: Any) -> Any:
    """The body with an assigned country code as the contract's CountryCode: strict validation takes enum members
    only, and JSON has none. Anything else is left for the model to refuse."""
    if not isinstance(document, dict) or not isinstance(document.get("shippingAddress"), dict):
        return document
    address = document["shippingAddress"]
    country = address.get("country")
    if type(country) is not str or country not in _COUNTRY_CODES:
        return document
    return {**document, "shippingAddress": {**address, "country": _COUNTRY_CODES[country]}}


_COUNTRY_CODES = {code.value: code for code in CountryCode}


def _item_with_json_number_types(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    prepared = dict(item)
    if type(prepared.get("price")) is int:
        prepared["price"] = Decimal(prepared["price"])
    quantity = prepared.get("quantity")
    # Bounded Decimals (at most 40 digits): comparing and converting them is cheap and exact.
    if type(quantity) is Decimal and quantity == quantity.to_integral_value():
        prepared["quantity"] = int(quantity)
    return prepared


_OUT_OF_RANGE = (
    f"number out of range: at most {MAX_SIGNIFICANT_DIGITS} significant digits and a magnitude between "
    f"1e{MIN_MAGNITUDE} and 1e{MAX_MAGNITUDE}"
)


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for error in exc.errors(include_url=False, include_context=False):
        if len(errors) == RuleViolation.MAX_ERRORS:
            break
        path = field_path([part for part in error["loc"] if part != "root"])
        if isinstance(error.get("input"), UnrepresentableNumber):
            message = _OUT_OF_RANGE
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["msg"].startswith("Input should be an instance of Decimal"):
            message = "must be a number"
        elif error["loc"][-1:] == ("country",) and error["type"] in ("is_instance_of", "enum"):
            message = "must be an assigned ISO 3166-1 alpha-2 country code in upper case, e.g. DE"
        elif error["type"] == "string_pattern_mismatch" and "postalCode" in error["loc"]:
            message = "must be letters A-Z, digits, spaces and hyphens, with at least one letter or digit"
        elif error["type"] == "string_pattern_mismatch":
            message = "must contain a non-blank character and no NUL (U+0000)"
        else:
            message = error["msg"]
        errors.append({"field": path, "message": message})
    return errors


# The most characters of a cancellation's reason (the order API's CancelOrderRequest.reason).
MAX_CANCEL_REASON_LENGTH = 500


def check_order_cancelled(event: OrderCancelled) -> None:
    """Raises RuleViolation unless event is a cancellation the Order Service could have written: eventType
    "OrderCancelled", ids that are not the nil UUID, and a reason (when there is one) as the order API accepts it:
    trimmed, 1-500 characters, no NUL."""
    errors: list[FieldError] = []
    if event.eventType != "OrderCancelled":
        errors.append({"field": "eventType", "message": f"must be OrderCancelled, not {event.eventType[:50]!r}"})
    for name in ("eventId", "orderId"):
        if getattr(event, name).int == 0:
            errors.append({"field": name, "message": "must not be the nil UUID"})
    reason = event.reason
    if reason is not None:
        if not reason or reason != reason.strip() or len(reason) > MAX_CANCEL_REASON_LENGTH:
            errors.append({"field": "reason", "message": f"must be trimmed, 1-{MAX_CANCEL_REASON_LENGTH} characters"})
        if "\x00" in reason:
            errors.append({"field": "reason", "message": "must not contain NUL (U+0000)"})
    if errors:
        raise RuleViolation("The OrderCancelled event breaks the order rules.", errors)
