"""The one error the rule modules raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict


class FieldError(TypedDict):
    """One broken rule: where (`items[0].quantity`, `body`) and what is wrong, in words for people."""

    field: str
    message: str


class RuleViolation(ValueError):
    """A document or event breaks a contract rule.

    errors: the broken rules, at most MAX_ERRORS of them (a hostile document can break thousands, and
    listing them all would cost more than the rest of the request); detail: one sentence for all of them.
    """

    MAX_ERRORS = 50

    def __init__(self, detail: str, errors: list[FieldError]) -> None:
        super().__init__(f"{detail} " + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]))
        self.detail = detail
        self.errors = errors[: self.MAX_ERRORS]


def field_path(loc: Sequence[Any], skip: int = 0) -> str:
    """('body', 'items', 0, 'quantity') -> 'items[0].quantity'."""
    out = ""
    for part in list(loc)[skip:]:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"
