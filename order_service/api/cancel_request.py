"""The cancel-order request body (schemas/openapi/order-service.yaml: `CancelOrderRequest`), optional, parsed
exactly as the contract says before anything is stored."""

from __future__ import annotations

from pydantic import ValidationError

from contract_models.order_api import CancelOrderRequest
from httpapi import strict_json
from httpapi.problems import ProblemError

# A cancellation body holds one field; a few values more than that are no request the contract describes.
MAX_VALUES = 100


def parse_cancel_request(body: bytes, content_type: str | None) -> str | None:
    """The reason a cancel-order body gives (trimmed), or None for no body or no reason.

    An empty body needs no content type; otherwise JSON only (I-JSON, httpapi.strict_json), no unknown fields,
    a reason of 1-500 characters with a non-blank one and no NUL. Raises ProblemError: 415 for another media
    type, 400 for a body that is not I-JSON, 413 for one of more than MAX_VALUES values, 422 naming the field.
    """
    if not body:
        return None
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ProblemError(
            415,
            "Unsupported Media Type",
            "Send the cancellation as application/json, or no body.",
            [{"field": "Content-Type", "message": "must be application/json"}],
        )
    try:
        document = strict_json.parse(body, max_values=MAX_VALUES)
    except strict_json.MalformedJSON as exc:
        detail = f"The body is not valid JSON: {exc}"
        raise ProblemError(400, "Malformed JSON", detail, [{"field": "body", "message": "not valid JSON"}]) from exc
    except strict_json.TooManyValues as exc:
        raise ProblemError(413, "Content Too Large", str(exc), [{"field": "body", "message": str(exc)}]) from exc
    if isinstance(document, dict) and "reason" in document and document["reason"] is None:
        # Optional, but not nullable: the model's None default stands for "absent" only.
        errors = [{"field": "reason", "message": "must be text"}]
        raise ProblemError(422, "Invalid request", "reason must be text.", errors)
    try:
        request = CancelOrderRequest.model_validate(document, strict=True)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "body",
                "message": "unknown field" if error["type"] == "extra_forbidden" else error["msg"],
            }
            for error in exc.errors(include_url=False, include_context=False)[:20]
        ]
        raise ProblemError(422, "Invalid request", "The cancellation request is not valid.", errors) from exc
    return None if request.reason is None else request.reason.strip()
