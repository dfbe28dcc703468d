"""JSON out with Decimal kept exact: money is never a float on its way through (in: httpapi.strict_json)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson
from starlette.responses import Response


def dumps(value: Any) -> bytes:
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), default=str).encode()


class DecimalJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


__all__ = ["Decimal", "DecimalJSONResponse", "dumps"]
