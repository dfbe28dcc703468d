"""JSON out with Decimal kept exact: money is never a float on its way through (in: httpapi.strict_json)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson
from starlette.responses import Response


def dumps(value: Any) -> bytes:
    """value as compact UTF-8 JSON, Decimals as exact numbers, other unknown types as their str().

    Non-ASCII text is written as UTF-8 (a quarter of the size of `\\u00e9` escapes); text that is not valid
    Unicode (a lone surrogate, which the request parser never lets in) falls back to ASCII escapes.
    """
    try:
        return simplejson.dumps(
            value, use_decimal=True, separators=(",", ":"), default=str, ensure_ascii=False
        ).encode()
    except UnicodeEncodeError:
        return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), default=str).encode()


class DecimalJSONResponse(Response):
    """A JSON response written by dumps()."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body: dumps(content)."""
        return dumps(content)


__all__ = ["Decimal", "DecimalJSONResponse", "dumps"]
