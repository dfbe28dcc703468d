"""The bounds on a number a request or event may carry before it is converted, and the value that stands in
for one outside them.

A non-zero number has at most `MAX_SIGNIFICANT_DIGITS` significant digits and its leading digit at
10**`MIN_MAGNITUDE` .. 10**`MAX_MAGNITUDE`. The order rules (contracts/order_rules.py) size their arithmetic
for exactly these inputs, and the HTTP edge's parser (httpapi/strict_json.py) measures each JSON number
against them and turns one outside them into an `UnrepresentableNumber`, which every typed field refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SIGNIFICANT_DIGITS = 40
# The leading digit of a non-zero number is at 10**MIN_MAGNITUDE .. 10**MAX_MAGNITUDE. Below reaches past the
# smallest double (4.9e-324), so whatever a JSON library writes from a float converts; above is far past every
# bound in the contracts (a price is at most 10**6, a total under 10**13).
MIN_MAGNITUDE = -400
MAX_MAGNITUDE = 40


@dataclass(frozen=True)
class UnrepresentableNumber:
    """A number too large, too small or too precise to convert; no typed field accepts it.

    literal: the start of its spelling (at most 40 characters), for error messages.
    """

    literal: str

    def __str__(self) -> str:
        return self.literal
