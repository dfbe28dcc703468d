"""Path, query and header values parsed exactly as the OpenAPI documents' schemas say.

FastAPI hands parameter text to pydantic in lax mode, which accepts more than the contracts allow: `' 5'`,
`'+5'`, `'05'`, `'1_0'` for an integer; `'1_0'` and silent float rounding (`30.0000000000000000001` passes a
maximum of 30) for a number; braces, `urn:uuid:` prefixes and missing hyphens for a uuid. The types here take
the text itself first:

* integer and number: the JSON number grammar (RFC 8259 §6), measured before conversion and converted
  exactly (`httpapi.strict_json.bounded_number`); an integer is a number without a fractional part, as JSON
  Schema counts it, so `5.0` is 5 but `5.5` is refused; a number is a `Decimal`, so bounds compare exactly;
* uuid: the hyphenated form of RFC 9562 §4 (hex digits in either case).

Each raises ValueError with a message for the client, which pydantic reports against the parameter (422).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator

from contracts.number_bounds import UnrepresentableNumber
from httpapi.strict_json import bounded_number

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def json_number(value: Any) -> Any:
    """Text in the JSON number grammar as int or Decimal; anything that is not text passes unchanged."""
    if not isinstance(value, str):
        return value
    if _JSON_NUMBER.fullmatch(value) is None:
        raise ValueError("must be a number written as in JSON (RFC 8259 §6)")
    number = bounded_number(value)
    if isinstance(number, UnrepresentableNumber):
        raise ValueError("number out of range")
    return number


def json_integer(value: Any) -> Any:
    """Text in the JSON number grammar whose value is whole, as int (JSON Schema's integer)."""
    number = json_number(value)
    if isinstance(number, Decimal):
        if number != number.to_integral_value():
            raise ValueError("must be an integer")
        return int(number)
    return number


def uuid_text(value: Any) -> Any:
    """Text in the hyphenated UUID form as UUID."""
    if not isinstance(value, str):
        return value
    if _UUID.fullmatch(value) is None:
        raise ValueError("must be a UUID such as 123e4567-e89b-12d3-a456-426614174000")
    return UUID(value)


# Validators to put after a parameter's Query(...)/Path(...) in its Annotated type: `Annotated[int, Query(ge=1),
# JSON_INTEGER]`. (Placed before it, FastAPI describes the Query's bounds as `ge`/`le` instead of
# `minimum`/`maximum`.)
JSON_INTEGER = BeforeValidator(json_integer)
JSON_NUMBER = BeforeValidator(json_number)
UUIDParameter = Annotated[UUID, BeforeValidator(uuid_text)]
