"""The create-order request body, parsed exactly as the contract says before anything is converted or stored."""

from __future__ import annotations

from contracts.order_rules import ValidOrder, validate_order
from contracts.violation import RuleViolation
from httpapi import strict_json
from httpapi.problems import ProblemError


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
