"""JSON out with Decimal kept exact: money is never a float on its way through (in: httpapi.strict_json)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson
from starlette.responses import Response


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; a Decimal is written as the number it is (simplejson use_decimal), other values
    JSON does not know (UUID, datetime) as their str()."""
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), default=str).encode()


class DecimalJSONResponse(Response):
    """The services' default response class: application/json rendered by dumps, so money stays exact."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Starlette's hook: the body bytes of content (see dumps)."""
        return dumps(content)


__all__ = ["Decimal", "DecimalJSONResponse", "dumps"]
