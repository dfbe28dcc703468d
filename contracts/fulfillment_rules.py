"""The rules a `FulfillmentStatusChanged` event keeps, beyond its Avro types, before the Order Service's
projection applies it to an order.

They are the Fulfillment Service's promises (schemas/avro/FulfillmentStatusChanged.avsc) made checkable:
ids are real (not the nil UUID), sequence and attempts are not negative, a Shipped or Delivered change
carries its tracking number and carrier, a Failed one its reason, and every text fits where the order
keeps it (1-200 characters for tracking number and carrier, at most 2,000 for a reason or a cancellation's
refusal, no NUL, which
PostgreSQL text cannot hold). An event that breaks them could never be stored, and retrying it would stall
every event behind it, so it goes to the dead-letter topic instead.
"""

from __future__ import annotations

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged
from contracts.violation import FieldError, RuleViolation

MAX_LABEL_LENGTH = 200  # tracking number, carrier
MAX_REASON_LENGTH = 2_000


INT32_MAX = 2**31 - 1
# The position of each status in an order's fulfillment history: picked up, then shipped or failed, then
# delivered (the sequence the Fulfillment Service's domain gives each event).
SEQUENCE_OF = {
    FulfillmentStatus.Pending: 0,
    FulfillmentStatus.Shipped: 1,
    FulfillmentStatus.Failed: 1,
    FulfillmentStatus.Cancelled: 1,
    FulfillmentStatus.Delivered: 2,
}


def check_status_changed(event: FulfillmentStatusChanged) -> None:
    """Raises RuleViolation naming each broken rule (field and message of each)."""
    errors: list[FieldError] = []
    for name in ("eventId", "orderId"):
        if getattr(event, name).int == 0:
            errors.append({"field": name, "message": "must not be the nil UUID"})
    for name in ("sequence", "attempts"):
        if not 0 <= getattr(event, name) <= INT32_MAX:
            # An Avro int is 32 bits; fastavro reads a longer varint for it without complaint.
            errors.append({"field": name, "message": f"must be within 0..{INT32_MAX}"})
    if event.sequence != SEQUENCE_OF[event.status]:
        # A sequence out of place would make every later, real change of the order look stale.
        errors.append(
            {"field": "sequence", "message": f"must be {SEQUENCE_OF[event.status]} when status is {event.status.value}"}
        )
    required = {
        FulfillmentStatus.Shipped: ("trackingNumber", "carrier"),
        FulfillmentStatus.Delivered: ("trackingNumber", "carrier"),
        FulfillmentStatus.Failed: ("reason",),
    }.get(event.status, ())
    for name, limit in (
        ("trackingNumber", MAX_LABEL_LENGTH),
        ("carrier", MAX_LABEL_LENGTH),
        ("reason", None),
        ("cancellationRefused", None),
    ):
        value: str | None = getattr(event, name)
        if value is None or not value.strip():
            if name in required:
                errors.append({"field": name, "message": f"required when status is {event.status.value}"})
            continue
        if len(value) > (limit or MAX_REASON_LENGTH):
            errors.append({"field": name, "message": f"longer than {limit or MAX_REASON_LENGTH} characters"})
        if "\x00" in value:
            errors.append({"field": name, "message": "must not contain NUL (U+0000)"})
    if errors:
        raise RuleViolation("The FulfillmentStatusChanged event breaks the fulfillment rules.", errors)
