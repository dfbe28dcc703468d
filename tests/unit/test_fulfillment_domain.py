"""The fulfillment state machine: every transition, its event and sequence number, guards, give-up rule."""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contract_models.events import FulfillmentStatus
from fulfillment_service.domain import (
    SEQ_DELIVERED,
    SEQ_OUTCOME,
    SEQ_PICKED_UP,
    Fulfillment,
    InvalidTransition,
    Shipment,
    Status,
    pick_up,
)
from fulfillment_service.resilience import BackoffPolicy

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ORDERED = T0 - timedelta(seconds=2)
LEASE = T0 + timedelta(seconds=30)
SHIPMENT = Shipment("SHIP-ABC", "MockCarrier", T0 + timedelta(days=3))


class FixedPolicy:
    """Gives up at max_attempts or after deadline; always waits delay."""

    def __init__(self, max_attempts: int = 3, deadline: timedelta = timedelta(minutes=5), delay: float = 2.0):
        self.max_attempts, self.deadline, self._delay = max_attempts, deadline, timedelta(seconds=delay)

    def gives_up(self, attempts_made: int, elapsed: timedelta) -> bool:
        return attempts_made >= self.max_attempts or elapsed >= self.deadline

    def delay(self, attempts_made: int) -> timedelta:
        return self._delay


def picked() -> Fulfillment:
    return pick_up(uuid.uuid4(), ORDERED, T0, LEASE).fulfillment


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pick_up_is_a_new_pending_row_reported_with_sequence_0():
    order_id = uuid.uuid4()
    transition = pick_up(order_id, ORDERED, T0, LEASE)
    f = transition.fulfillment
    assert (f.order_id, f.status, f.attempts, f.sequence) == (order_id, Status.Pending, 0, SEQ_PICKED_UP)
    assert (f.picked_up_at, f.updated_at, f.next_attempt_at, f.order_timestamp) == (T0, T0, LEASE, ORDERED)
    assert (f.tracking_number, f.carrier, f.estimated_delivery, f.failure_reason, f.deliver_at) == (None,) * 5
    assert transition.expected is None  # a new row
    assert set(transition.changed) == {field.name for field in dataclasses.fields(Fulfillment)}
    event = transition.event
    assert (event.orderId, event.status, event.sequence, event.attempts, event.timestamp) == (
        order_id,
        FulfillmentStatus.Pending,
        0,
        0,
        T0,
    )
    assert (event.trackingNumber, event.carrier, event.estimatedDelivery, event.reason) == (None,) * 4


def test_ship_records_the_shipment_and_reports_it_with_sequence_1():
    pending = picked()
    transition = pending.ship(SHIPMENT, later(1), delivery_after=None)
    f = transition.fulfillment
    assert (f.status, f.attempts, f.sequence) == (Status.Shipped, 1, SEQ_OUTCOME)
    assert (f.tracking_number, f.carrier, f.estimated_delivery) == (
        "SHIP-ABC",
        "MockCarrier",
        SHIPMENT.estimated_delivery,
    )
    assert (f.next_attempt_at, f.failure_reason, f.deliver_at, f.updated_at) == (None, None, None, later(1))
    assert transition.expected is Status.Pending
    assert set(transition.changed) == {
        "status",
        "tracking_number",
        "carrier",
        "estimated_delivery",
        "attempts",
        "next_attempt_at",
        "failure_reason",
        "sequence",
        "deliver_at",
        "updated_at",
        "call_started_at",  # the call ended
        "cancel_refused",  # a cancellation processed during the call is refused
    }
    event = transition.event
    assert (event.status, event.sequence, event.attempts, event.timestamp) == (
        FulfillmentStatus.Shipped,
        1,
        1,
        later(1),
    )
    assert (event.trackingNumber, event.carrier, event.estimatedDelivery, event.reason) == (
        "SHIP-ABC",
        "MockCarrier",
        SHIPMENT.estimated_delivery,
        None,
    )
    assert pending.status is Status.Pending  # transitions return new states; the old one is unchanged


def test_ship_after_failed_attempts_counts_this_call_and_clears_the_failure():
    retrying = picked().attempt_failed("503", later(1), FixedPolicy()).fulfillment
    shipped = retrying.ship(SHIPMENT, later(5), delivery_after=None).fulfillment
    assert (shipped.attempts, shipped.failure_reason, shipped.next_attempt_at) == (2, None, None)


def test_ship_schedules_simulated_delivery_when_asked():
    shipped = picked().ship(SHIPMENT, later(1), delivery_after=timedelta(seconds=10)).fulfillment
    assert shipped.deliver_at == later(11)
    assert picked().ship(SHIPMENT, later(1), delivery_after=timedelta(0)).fulfillment.deliver_at is None


@pytest.mark.parametrize(("attempts", "counted"), [(0, 1), (1, 1), (3, 3)])
def test_a_found_shipment_counts_no_new_call_but_at_least_one(attempts, counted):
    pending = dataclasses.replace(picked(), attempts=attempts)
    transition = pending.ship(SHIPMENT, later(1), delivery_after=None, found=True)
    assert transition.fulfillment.attempts == counted
    assert transition.event.attempts == counted


def test_a_failed_attempt_below_the_limits_schedules_a_retry_and_publishes_nothing():
    pending = picked()
    transition = pending.attempt_failed("provider returned 503", later(1), FixedPolicy(delay=2))
    f = transition.fulfillment
    assert (f.status, f.attempts, f.sequence) == (Status.Pending, 1, SEQ_PICKED_UP)
    assert (f.next_attempt_at, f.failure_reason, f.updated_at) == (later(3), "provider returned 503", later(1))
    assert transition.event is None
    assert transition.expected is Status.Pending
    assert set(transition.changed) == {"attempts", "next_attempt_at", "failure_reason", "updated_at", "call_started_at"}


def test_gives_up_at_the_attempt_limit_and_reports_failed_with_sequence_1():
    policy = FixedPolicy(max_attempts=3)
    f = picked()
    for n in range(1, 3):
        f = f.attempt_failed(f"503 #{n}", later(n), policy).fulfillment
        assert f.status is Status.Pending
    transition = f.attempt_failed("503 #3", later(3), policy)
    failed = transition.fulfillment
    assert (failed.status, failed.attempts, failed.sequence, failed.next_attempt_at) == (
        Status.Failed,
        3,
        SEQ_OUTCOME,
        None,
    )
    assert failed.failure_reason == "gave up after 3 attempt(s): 503 #3"
    assert set(transition.changed) == {
        "status",
        "attempts",
        "next_attempt_at",
        "failure_reason",
        "sequence",
        "updated_at",
        "call_started_at",
    }
    event = transition.event
    assert (event.status, event.sequence, event.attempts, event.reason, event.timestamp) == (
        FulfillmentStatus.Failed,
        1,
        3,
        "gave up after 3 attempt(s): 503 #3",
        later(3),
    )
    assert event.trackingNumber is None


def test_gives_up_at_the_deadline_counted_from_pick_up():
    policy = FixedPolicy(max_attempts=100, deadline=timedelta(seconds=60))
    assert picked().attempt_failed("timeout", later(59), policy).fulfillment.status is Status.Pending
    assert picked().attempt_failed("timeout", later(60), policy).fulfillment.status is Status.Failed


def test_backoff_policy_drives_the_give_up_rule():
    policy = BackoffPolicy(max_attempts=2, deadline_seconds=300, initial=0.5, maximum=4)
    retry = picked().attempt_failed("503", later(1), policy).fulfillment
    assert retry.status is Status.Pending
    assert later(1) < retry.next_attempt_at <= later(1 + 4.5)
    assert retry.attempt_failed("503", later(2), policy).fulfillment.status is Status.Failed


def test_fail_directly_reports_the_reason():
    transition = picked().fail(2, "card declined", later(1))
    assert transition.fulfillment.failure_reason == "gave up after 2 attempt(s): card declined"
    assert transition.event.reason == transition.fulfillment.failure_reason


def test_waiting_for_the_breaker_only_moves_the_next_attempt():
    pending = picked().attempt_failed("503", later(1), FixedPolicy()).fulfillment
    transition = pending.wait_for_breaker(later(7))
    assert transition.fulfillment == dataclasses.replace(pending, next_attempt_at=later(7))
    assert transition.changed == ("next_attempt_at", "call_started_at")
    assert transition.event is None
    assert transition.expected is Status.Pending


def test_deliver_reports_the_shipment_again_with_sequence_2():
    shipped = picked().ship(SHIPMENT, later(1), delivery_after=timedelta(seconds=5)).fulfillment
    transition = shipped.deliver(later(6))
    f = transition.fulfillment
    assert (f.status, f.sequence, f.deliver_at, f.updated_at) == (Status.Delivered, SEQ_DELIVERED, None, later(6))
    assert (f.tracking_number, f.attempts) == ("SHIP-ABC", 1)
    assert transition.expected is Status.Shipped
    assert set(transition.changed) == {"status", "sequence", "deliver_at", "updated_at"}
    event = transition.event
    assert (event.status, event.sequence, event.attempts) == (FulfillmentStatus.Delivered, 2, 1)
    assert (event.trackingNumber, event.carrier, event.estimatedDelivery, event.reason) == (
        "SHIP-ABC",
        "MockCarrier",
        SHIPMENT.estimated_delivery,
        None,
    )


def test_sequence_numbers_rise_along_the_history():
    first = pick_up(uuid.uuid4(), ORDERED, T0, LEASE)
    shipped = first.fulfillment.ship(SHIPMENT, later(1), delivery_after=timedelta(seconds=1))
    delivered = shipped.fulfillment.deliver(later(2))
    assert [t.event.sequence for t in (first, shipped, delivered)] == [0, 1, 2]
    assert len({t.event.eventId for t in (first, shipped, delivered)}) == 3


def finished() -> list[Fulfillment]:
    shipped = picked().ship(SHIPMENT, later(1), delivery_after=None).fulfillment
    return [shipped, shipped.deliver(later(2)).fulfillment, picked().fail(1, "503", later(1)).fulfillment]


@pytest.mark.parametrize("done", finished(), ids=lambda f: f.status)
def test_a_finished_order_cannot_be_shipped_failed_or_retried_again(done):
    with pytest.raises(InvalidTransition):
        done.ship(SHIPMENT, later(3), delivery_after=None)
    with pytest.raises(InvalidTransition):
        done.ship(SHIPMENT, later(3), delivery_after=None, found=True)
    with pytest.raises(InvalidTransition):
        done.attempt_failed("503", later(3), FixedPolicy())
    with pytest.raises(InvalidTransition):
        done.fail(1, "503", later(3))
    with pytest.raises(InvalidTransition):
        done.schedule_retry(1, "503", later(4), later(3))
    with pytest.raises(InvalidTransition):
        done.wait_for_breaker(later(4))
    assert done.status.is_terminal


def test_only_a_shipped_order_is_delivered():
    pending, failed = picked(), picked().fail(1, "503", later(1)).fulfillment
    delivered = picked().ship(SHIPMENT, later(1), delivery_after=None).fulfillment.deliver(later(2)).fulfillment
    for not_shipped in (pending, failed, delivered):  # a redelivered delivery of a Delivered order too
        with pytest.raises(InvalidTransition, match="deliver"):
            not_shipped.deliver(later(3))
    assert not pending.status.is_terminal


def test_two_workers_racing_from_one_snapshot_both_expect_pending():
    # Only the first write finds the row still Pending; the store drops the other with its event.
    pending = picked()
    shipped = pending.ship(SHIPMENT, later(1), delivery_after=None)
    failed = pending.attempt_failed("timeout", later(1), FixedPolicy(max_attempts=1))
    assert shipped.expected is failed.expected is Status.Pending
    assert (shipped.fulfillment.status, failed.fulfillment.status) == (Status.Shipped, Status.Failed)
