"""The parts of a health body that describe a service's outbox and the registry's word on its event schemas,
shared by both services (contracts: `Health` in schemas/openapi/order-service.yaml and fulfillment-service.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messaging.avro_codec import RegistrationCheck
from outbox.parking import OutboxHealth

# The oldest unpublished event may be this old (seconds) before health calls the pipeline stalled.
STALLED_OUTBOX_SECONDS = 60.0


@dataclass(frozen=True)
class OutboxReport:
    """body: the outbox fields of a health body (outboxBacklog, outboxOldestAgeSeconds in s with one decimal,
    outboxParked, outboxParkedReason of at most 500 characters); reason: one sentence when events are parked
    or the oldest unpublished one is older than STALLED_OUTBOX_SECONDS, else None."""

    body: dict[str, Any]
    reason: str | None


def outbox_report(state: OutboxHealth) -> OutboxReport:
    """The OutboxReport of state."""
    age = None if state.oldest_unpublished_age_s is None else round(state.oldest_unpublished_age_s, 1)
    body = {
        "outboxBacklog": state.backlog,
        "outboxOldestAgeSeconds": age,
        "outboxParked": state.parked,
        "outboxParkedReason": (state.oldest_parked_reason or "")[:500] or None,
    }
    reason = None
    if state.parked:
        reason = f"{state.parked} event(s) parked in the outbox: they can never be published as they are"
    elif age is not None and age > STALLED_OUTBOX_SECONDS:
        reason = f"the oldest unpublished event is {age:g} s old"
    return OutboxReport(body, reason)


def schema_report(checks: list[RegistrationCheck]) -> dict[str, Any]:
    """The `eventSchema` of a health body from the registry's last answers: a refusal first, then an unanswered
    check, else ok; `unknown` before the first check."""
    if not checks:
        return {"status": "unknown", "detail": "not checked yet", "fields": []}
    order = {"refused": 0, "unknown": 1, "ok": 2}
    check = min(checks, key=lambda c: order[c.status])
    return {"status": check.status, "subject": check.subject, "detail": check.detail, "fields": list(check.fields)}
