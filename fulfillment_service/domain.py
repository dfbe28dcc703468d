"""The fulfillment of one order as a state machine, free of I/O.

```
 pick_up ──▶ Pending ──ship──▶ Shipped ──deliver──▶ Delivered
               │  ▲
               │  └── begin_call, schedule_retry, wait_for_breaker (stays Pending, publishes nothing)
               ├──fail──▶ Failed
               └──cancel──▶ Cancelled      (cancelled_before_pick_up: an OrderCancelled came first)
```

Cancellation and the provider call are serialised on the fulfillment's row: a call starts only through
begin_call, which records that a call is under way (call_started_at) unless a cancellation was processed
first, and then cancels instead, so no call is made. A cancellation processed while no call is under way
cancels at once (Cancelled, no call ever after: the retry scheduler claims Pending orders only). One processed
while a call is under way is only recorded (cancel_requested_at); the call finishes and its outcome decides:
shipped -> the cancellation is refused (Shipped, the event carries `cancellationRefused`), failed -> Cancelled,
no retry. An order that shipped before the cancellation reports the refusal with its current state again.

Every transition returns a `Transition`: the new state, the fields it changed, the status the stored
row must still have for the change to apply, and the `FulfillmentStatusChanged` event that reports it
(or None). Calling a transition on a state that does not allow it raises `InvalidTransition`; a change
that another worker overtook in the database (the stored status moved on) is dropped by the store, with
its event, so each outcome is reported once.

Sequence numbers (0 picked up, 1 outcome, 2 delivered) and the give-up rule live here. Times are
timezone-aware UTC datetimes throughout; the store, the provider and the Avro codec convert at their edges.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from contract_models.events import FulfillmentStatus, FulfillmentStatusChanged
from contract_models.events import ShippingAddress as EventAddress
from contracts.order_rules import Address, address_from_document

# Where an order ships: the shipping address of its OrderCreated, as the order rules keep it.
Destination = Address

SEQ_PICKED_UP, SEQ_OUTCOME, SEQ_DELIVERED = 0, 1, 2


class Status(StrEnum):
    """Where an order's fulfillment stands; the value is what the store and the API hold."""

    Pending = "Pending"
    Shipped = "Shipped"
    Delivered = "Delivered"
    Failed = "Failed"
    Cancelled = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once no provider call is due any more (Shipped, Delivered, Failed, Cancelled)."""
        return self is not Status.Pending


# Why a cancellation is refused: what FulfillmentStatusChanged.cancellationRefused says.
REFUSED_SHIPPED = "the order had shipped before the cancellation was processed"
REFUSED_FAILED = "the order's fulfillment had failed before the cancellation was processed; it will not ship"


class InvalidTransition(Exception):
    """A transition was asked of a fulfillment whose status does not allow it."""


@dataclass(frozen=True)
class Shipment:
    """A shipment the provider created for an order: its tracking number, carrier and expected arrival."""

    tracking_number: str
    carrier: str
    estimated_delivery: datetime


class RetryPolicy(Protocol):
    """When to stop retrying a failing order, and how long to wait before the next attempt."""

    def gives_up(self, attempts_made: int, elapsed: timedelta) -> bool:
        """True when no attempt may follow attempts_made calls, elapsed since the order was picked up."""
        ...

    def delay(self, attempts_made: int) -> timedelta:
        """How long to wait before the attempt after attempts_made failed ones."""
        ...


@dataclass(frozen=True)
class Transition:
    """One change of a fulfillment: the state after it and what the store must do to record it.

    expected is the status the stored row must still have (None: a new row, written unless the order
    already has one); changed names the fields to write (every field of a new row); event is published in
    the same transaction, and only if the change applied.
    """

    fulfillment: Fulfillment
    expected: Status | None
    changed: tuple[str, ...]
    event: FulfillmentStatusChanged | None


@dataclass(frozen=True)
class Fulfillment:
    """The fulfillment of one order. attempts counts provider calls; sequence is that of the last event.

    next_attempt_at: when a Pending order is due for its next provider call (a running call pushes it
    past the call's timeout, so an order whose worker died mid-call is taken up again). deliver_at: when a
    Shipped order's simulated delivery is due. destination: where the order ships, None for an order placed
    without an address (or announced by a writer that predates the field). trace_context: the W3C trace context
    the order was picked up in (observability.trace_context's stored form), so that later attempts continue that
    trace; the domain carries it and never reads it. call_started_at: a provider call started then and its
    outcome is not recorded yet. cancel_requested_at: when an OrderCancelled was processed; cancel_refused: why
    it was refused. All datetimes are timezone-aware UTC.
    """

    order_id: uuid.UUID
    status: Status
    attempts: int
    sequence: int
    picked_up_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None = None
    order_timestamp: datetime | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    estimated_delivery: datetime | None = None
    failure_reason: str | None = None
    deliver_at: datetime | None = None
    destination: Destination | None = None
    trace_context: str | None = None
    call_started_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    cancel_refused: str | None = None

    def begin_call(self, now: datetime) -> Transition:
        """Record that a provider call starts now (stays Pending, publishes nothing); or, when a cancellation
        was processed first, cancel instead (Cancelled): the caller then makes no call. Raises
        InvalidTransition unless Pending."""
        self._require(Status.Pending, "call the provider for")
        if self.cancel_requested_at is not None:
            return self._cancelled(now)
        return self._change(None, call_started_at=now)

    def cancel(self, now: datetime) -> Transition | None:
        """Process an OrderCancelled: cancel the order unless it shipped (see the module's docstring).

        Pending with no call under way -> Cancelled (publishes Cancelled, sequence 1); Pending with a call
        under way -> stays Pending with the cancellation recorded, for the call's outcome to decide (publishes
        nothing); Shipped or Delivered -> refused (REFUSED_SHIPPED), reported with the current state again;
        Failed -> refused (REFUSED_FAILED) likewise. None when there is nothing to change: the order is
        Cancelled already, or the cancellation was processed before (a redelivery).
        """
        if self.status is Status.Cancelled or self.cancel_requested_at is not None:
            return None
        if self.status is Status.Pending:
            if self.call_started_at is None:
                return self._cancelled(now)
            return self._change(None, cancel_requested_at=now)
        refusal = REFUSED_FAILED if self.status is Status.Failed else REFUSED_SHIPPED
        return self._change(now, cancel_requested_at=now, cancel_refused=refusal)

    def _cancelled(self, now: datetime, **changes: Any) -> Transition:
        """-> Cancelled at now (with changes), reported by a Cancelled event (sequence 1)."""
        return self._change(
            now,
            **changes,
            status=Status.Cancelled,
            cancel_requested_at=self.cancel_requested_at or now,
            call_started_at=None,
            next_attempt_at=None,
            sequence=SEQ_OUTCOME,
            updated_at=now,
        )

    def ship(
        self, shipment: Shipment, now: datetime, delivery_after: timedelta | None, *, found: bool = False
    ) -> Transition:
        """Pending -> Shipped with the shipment's details; publishes Shipped (sequence 1).

        found: the shipment was found by asking the provider (a call before a crash or redelivery created
        it), so no new call is counted, but at least one. delivery_after: when set, delivery is simulated
        that long after now. A cancellation processed during the call is refused (REFUSED_SHIPPED, on the
        event). Raises InvalidTransition unless Pending.
        """
        self._require(Status.Pending, "ship")
        refused = REFUSED_SHIPPED if self.cancel_requested_at is not None else None
        return self._change(
            now,
            status=Status.Shipped,
            call_started_at=None,
            cancel_refused=refused,
            tracking_number=shipment.tracking_number,
            carrier=shipment.carrier,
            estimated_delivery=shipment.estimated_delivery,
            attempts=max(self.attempts, 1) if found else self.attempts + 1,
            next_attempt_at=None,
            failure_reason=None,
            sequence=SEQ_OUTCOME,
            deliver_at=now + delivery_after if delivery_after else None,
            updated_at=now,
        )

    def attempt_failed(self, reason: str, now: datetime, policy: RetryPolicy) -> Transition:
        """A provider call failed or timed out: fail the order when the policy gives up on it (counting
        this call and the time since pick-up), otherwise schedule a retry after the policy's delay. A
        cancellation processed during the call cancels the order instead (Cancelled, no retry).
        Raises InvalidTransition unless Pending."""
        self._require(Status.Pending, "record a failed attempt of")
        attempts = self.attempts + 1
        if self.cancel_requested_at is not None:
            return self._cancelled(now, attempts=attempts)
        if policy.gives_up(attempts, now - self.picked_up_at):
            return self.fail(attempts, reason, now)
        return self.schedule_retry(attempts, reason, now + policy.delay(attempts), now)

    def fail(self, attempts: int, reason: str, now: datetime) -> Transition:
        """Pending -> Failed after attempts calls, the last failing for reason; publishes Failed (sequence 1)
        with the reason "gave up after <attempts> attempt(s): <reason>". Raises InvalidTransition unless
        Pending."""
        self._require(Status.Pending, "fail")
        return self._change(
            now,
            status=Status.Failed,
            attempts=attempts,
            call_started_at=None,
            next_attempt_at=None,
            failure_reason=f"gave up after {attempts} attempt(s): {reason}",
            sequence=SEQ_OUTCOME,
            updated_at=now,
        )

    def schedule_retry(self, attempts: int, reason: str, due: datetime, now: datetime) -> Transition:
        """Stays Pending after attempts calls, the last failing for reason; the next call is due then.
        Publishes nothing. Raises InvalidTransition unless Pending."""
        self._require(Status.Pending, "schedule a retry of")
        return self._change(
            None, attempts=attempts, next_attempt_at=due, failure_reason=reason, call_started_at=None, updated_at=now
        )

    def wait_for_breaker(self, until: datetime, now: datetime | None = None) -> Transition:
        """Stays Pending, not failed, while the breaker is open (or after a call that ended without the
        provider's answer); the next call is due at until. Counts no attempt, publishes nothing. A cancellation
        processed meanwhile cancels the order instead (at now, default until). Raises InvalidTransition unless
        Pending."""
        self._require(Status.Pending, "make wait")
        if self.cancel_requested_at is not None:
            return self._cancelled(now or until)
        return self._change(None, next_attempt_at=until, call_started_at=None)

    def deliver(self, now: datetime) -> Transition:
        """Shipped -> Delivered; publishes Delivered (sequence 2) with the shipment's details. Raises
        InvalidTransition unless Shipped."""
        self._require(Status.Shipped, "deliver")
        return self._change(now, status=Status.Delivered, sequence=SEQ_DELIVERED, deliver_at=None, updated_at=now)

    def report(self, now: datetime) -> FulfillmentStatusChanged:
        """The event reporting the current state again (same status, sequence and details, a new event id),
        for an order whose OrderCreated came again: its consumer may have missed the first report."""
        return status_changed(self, now)

    def _require(self, status: Status, action: str) -> None:
        if self.status is not status:
            raise InvalidTransition(f"cannot {action} order {self.order_id}: it is {self.status}, not {status}")

    def _change(self, published_at: datetime | None, **changes: Any) -> Transition:
        """The transition that sets changes, reported by an event at published_at (None: no event)."""
        after = dataclasses.replace(self, **changes)
        event = None if published_at is None else status_changed(after, published_at)
        return Transition(after, expected=self.status, changed=tuple(changes), event=event)


# The fields a new row is written with: all of them.
_ALL_FIELDS = tuple(field.name for field in dataclasses.fields(Fulfillment))


def cancelled_before_pick_up(order_id: uuid.UUID, now: datetime) -> Transition:
    """A new fulfillment, Cancelled, for an order whose OrderCancelled came before its OrderCreated was
    processed (that one then finds the order final and reports it); publishes Cancelled (sequence 1)."""
    fulfillment = Fulfillment(
        order_id=order_id,
        status=Status.Cancelled,
        attempts=0,
        sequence=SEQ_OUTCOME,
        picked_up_at=now,
        updated_at=now,
        cancel_requested_at=now,
    )
    return _new(fulfillment, now)


def pick_up(
    order_id: uuid.UUID,
    order_timestamp: datetime,
    now: datetime,
    lease_until: datetime,
    destination: Destination | None = None,
) -> Transition:
    """A new Pending fulfillment for an accepted order shipping to destination (None: no address), its first
    provider call due at lease_until (by when a worker that took it up and died is presumed gone); publishes
    Pending (sequence 0, no attempts)."""
    fulfillment = Fulfillment(
        order_id=order_id,
        status=Status.Pending,
        attempts=0,
        sequence=SEQ_PICKED_UP,
        picked_up_at=now,
        updated_at=now,
        next_attempt_at=lease_until,
        order_timestamp=order_timestamp,
        destination=destination,
    )
    return _new(fulfillment, now)


def _new(fulfillment: Fulfillment, now: datetime) -> Transition:
    """The transition that writes fulfillment as a new row (every field), reported by an event at now."""
    return Transition(fulfillment, expected=None, changed=_ALL_FIELDS, event=status_changed(fulfillment, now))


def destination_of(address: EventAddress | None) -> Destination | None:
    """The destination an OrderCreated names (its shippingAddress; None when it has none)."""
    return None if address is None else address_from_document(address.model_dump())


def status_changed(fulfillment: Fulfillment, now: datetime) -> FulfillmentStatusChanged:
    """The event reporting fulfillment's state as of now, with a new event id."""
    return FulfillmentStatusChanged(
        eventId=uuid.uuid4(),
        orderId=fulfillment.order_id,
        status=FulfillmentStatus(fulfillment.status.value),
        sequence=fulfillment.sequence,
        trackingNumber=fulfillment.tracking_number,
        carrier=fulfillment.carrier,
        estimatedDelivery=fulfillment.estimated_delivery,
        reason=fulfillment.failure_reason,
        attempts=fulfillment.attempts,
        timestamp=now,
        cancellationRefused=fulfillment.cancel_refused,
    )
