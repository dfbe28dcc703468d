"""The fulfillment use cases: take up an accepted order, ship it through the provider exactly once, deliver it.

They orchestrate; the rules are the domain's. Each step asks the domain for a transition and hands it to
the unit of work, which records the state change and the event reporting it in one transaction (outbox).
The provider is called with the order id as idempotency key, and before any retry or redelivered
attempt it is asked whether it already shipped the order, so no order ships twice and no second
tracking number appears. A provider failure or timeout is an outcome (a retry or Failed), never an exception;
errors of the database propagate, and the consumer runtime retries the record (messaging/consumer/dispatch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer

from contract_models.events import OrderCancelled, OrderCreated
from fulfillment_service.domain import (
    Fulfillment,
    RetryPolicy,
    Shipment,
    Status,
    Transition,
    cancelled_before_pick_up,
    destination_of,
    pick_up,
)
from fulfillment_service.metrics import FulfillmentMetrics
from fulfillment_service.resilience import CircuitBreaker
from fulfillment_service.shipping import ProviderError, ShippingProvider
from fulfillment_service.unit_of_work import UnitOfWork
from observability.logs import order_context
from observability.metrics import Metrics
from observability.trace_context import restore

# A running call pushes the order's next attempt this far past the call timeout: an order whose worker
# died mid-call is then due again for the retry scheduler.
LEASE_MARGIN = timedelta(seconds=20)

log = logging.getLogger(__name__)


class Fulfiller:
    """The use cases of one service instance, with the orders it is working on (active).

    provider_timeout_seconds bounds every provider call; delivery_after_seconds > 0 simulates delivery
    that long after shipping. shipped and failed count the outcomes this instance recorded; metrics is where
    outcomes, provider calls and scheduled retries are observed (fulfillment_service.metrics).

    Every step runs with the order's id bound to its log lines (observability.logs.order_context), and each state
    change it records is one INFO line: "fulfillment picked up", "retry scheduled", "order shipped", "order failed",
    "order delivered", "order cancelled", "cancellation refused", "cancellation awaits the provider call"; a
    shipment the provider made for an order recorded Failed or Cancelled meanwhile is a WARNING.
    tracer makes a span per provider call, a child of the current span (default: the global provider's tracer).
    """

    def __init__(
        self,
        uow: UnitOfWork,
        provider: ShippingProvider,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        provider_timeout_seconds: float,
        delivery_after_seconds: float,
        clock: Callable[[], datetime] = functools.partial(datetime.now, UTC),
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._uow = uow
        self._tracer = tracer or trace.get_tracer(__name__)
        self._metrics = FulfillmentMetrics(metrics or Metrics())
        self._provider = provider
        self._breaker = breaker
        self._retry = retry
        self._timeout = provider_timeout_seconds
        self._lease = timedelta(seconds=provider_timeout_seconds) + LEASE_MARGIN
        self._delivery_after = timedelta(seconds=delivery_after_seconds) if delivery_after_seconds > 0 else None
        self._clock = clock
        self._active: set[uuid.UUID] = set()
        self.shipped = 0
        self.failed = 0

    @property
    def call_lease(self) -> timedelta:
        """How long an order being attempted stays not due: the call timeout plus LEASE_MARGIN."""
        return self._lease

    @property
    def active(self) -> set[uuid.UUID]:
        """Ids of the orders whose provider attempt is running in this instance."""
        return self._active

    async def handle_order_created(self, event: OrderCreated) -> None:
        """Pick the order up (durably, reported by a Pending event) and make its first provider attempt.

        A redelivered (or republished) event finds the order already picked up: a finished order is not
        attempted again, but its current state is reported again, in case the Order Service missed it; an
        unfinished one is attempted again unless it is running here already. The order's destination (its
        shippingAddress, None without one) is kept with it for every later attempt. Returns once the attempt's
        outcome is durable; raises only what the unit of work raises.
        """
        with order_context(event.orderId):
            now = self._clock()
            destination = destination_of(event.shippingAddress)
            picked_up = pick_up(event.orderId, event.timestamp, now, now + self._lease, destination)
            fulfillment, new = await self._uow.add(picked_up)
            if new:
                log.info("fulfillment picked up", extra={"status": fulfillment.status.value})
            else:
                log.debug("OrderCreated again for a picked-up order", extra={"status": fulfillment.status.value})
            if fulfillment.status.is_terminal:
                await self._uow.publish(fulfillment.report(now))
                return
            if fulfillment.order_id in self._active:
                return
            await self.attempt(fulfillment, first=new)

    async def handle_order_cancelled(self, event: OrderCancelled) -> None:
        """Cancel the order unless it shipped (Fulfillment.cancel, decided on the order's row as it is now).

        Not picked up yet: it is recorded Cancelled, so its OrderCreated finds it final. A provider call under
        way: the cancellation is recorded and the call's outcome decides (attempt). A redelivered (or
        republished) cancellation of a final order reports its state again, with the refusal if there was one.
        Returns once the outcome is durable; raises only what the unit of work raises.
        """
        with order_context(event.orderId):
            now = self._clock()
            order_id = event.orderId

            def decide(current: Fulfillment | None) -> Transition | None:
                return cancelled_before_pick_up(order_id, now) if current is None else current.cancel(now)

            stored, changed = await self._uow.decide(order_id, decide)
            if changed and stored is not None:
                if stored.status is Status.Cancelled:
                    self._metrics.recorded(Status.Cancelled)
                _log_cancellation(stored)
            elif stored is not None and stored.status.is_terminal:
                log.debug("OrderCancelled again for a final order", extra={"status": stored.status.value})
                await self._uow.publish(stored.report(now))

    async def attempt(self, fulfillment: Fulfillment, first: bool = False) -> None:
        """One provider call for a Pending order, then its outcome recorded: Shipped, Failed, a retry, or
        Cancelled when a cancellation was processed first or during the call (see fulfillment_service.domain).

        Unless first (the order's very first attempt), ask the provider first whether it already shipped
        the order (a call that succeeded just before a crash): then record that shipment, call nothing.
        The call starts only once its start is recorded on the order's row, which a cancellation processed
        before prevents (the order is then Cancelled and no call is made). While the breaker is open the order
        waits, picked up and not failed. Returns at once when the order is being attempted here already.
        ProviderError and a call over provider_timeout_seconds are recorded as a failed attempt; any other
        exception of the call (or of the unit of work) propagates, after the breaker counted the call as failed
        and (for an exception of the call) the order was made due again when the breaker next lets a call
        through, without counting an attempt. Every outcome is decided on the row as it is when recorded. It
        runs in the current span, or without one (the retry scheduler's) in a span of the trace the order was
        picked up in.
        """
        with order_context(fulfillment.order_id), self._in_order_trace(fulfillment, "attempt"):
            await self._attempt(fulfillment, first)

    async def _attempt(self, fulfillment: Fulfillment, first: bool) -> None:
        order_id = fulfillment.order_id
        if order_id in self._active:
            return
        self._active.add(order_id)
        try:
            if not first:
                with self._provider_span("find_shipment", order_id):
                    found = await self._provider.find_shipment(str(order_id))
                if found is not None:
                    now = self._clock()
                    recorded = await self._record(
                        order_id, lambda f: f.ship(found, now, self._delivery_after, found=True)
                    )
                    _check_shipment_recorded(found, *recorded)
                    return
            started, began = await self._record(order_id, lambda f: f.begin_call(self._clock()))
            if not began or started is None or started.status is not Status.Pending:
                return  # cancelled first, or finished elsewhere: no call
            if not self._breaker.allow():
                log.debug("provider call waits for the circuit breaker")
                until = self._clock() + self._breaker.retry_after()
                await self._record(order_id, lambda f: f.wait_for_breaker(until, self._clock()))
                return
            call_started = time.perf_counter()
            try:
                # asyncio.timeout runs the call in this task (wait_for would start a task per call).
                with self._provider_span("create_shipment", order_id):
                    async with asyncio.timeout(self._timeout):
                        shipment = await self._provider.create_shipment(str(order_id), fulfillment.destination)
            except (ProviderError, TimeoutError) as exc:
                self._metrics.provider_failed(exc, time.perf_counter() - call_started)
                self._breaker.record_failure()
                reason = str(exc) or f"shipping provider did not answer within {self._timeout:g} s"
                await self._record(order_id, lambda f: f.attempt_failed(reason, self._clock(), self._retry), retry=True)
                return
            except Exception as exc:
                # Any other failure of the call (the provider's own storage) still ends it: a half-open
                # breaker's probe slot must be released, or the breaker never closes. It is not the provider's
                # answer, so no attempt is counted: the order is due again when the breaker lets a call through
                # (a retry looks the shipment up first), not only once its call lease has run out.
                self._metrics.provider_failed(exc, time.perf_counter() - call_started)
                self._breaker.record_failure()
                until = self._clock() + self._breaker.retry_after()
                with contextlib.suppress(Exception):  # our own database failing too: the lease still frees it
                    await self._record(order_id, lambda f: f.wait_for_breaker(until, self._clock()))
                raise
            except BaseException as exc:  # cancelled: the probe slot is released, the lease frees the order
                self._metrics.provider_failed(exc, time.perf_counter() - call_started)
                self._breaker.record_failure()
                raise
            self._metrics.provider_succeeded(time.perf_counter() - call_started)
            self._breaker.record_success()
            recorded = await self._record(order_id, lambda f: f.ship(shipment, self._clock(), self._delivery_after))
            _check_shipment_recorded(shipment, *recorded)
        finally:
            self._active.discard(order_id)

    async def deliver(self, fulfillment: Fulfillment) -> None:
        """Record the simulated delivery of a Shipped order, reported by a Delivered event (once; a second call
        for the same order records nothing). Raises InvalidTransition (the domain's) for an order not Shipped."""
        with order_context(fulfillment.order_id), self._in_order_trace(fulfillment, "delivery"):
            transition = fulfillment.deliver(self._clock())
            if await self._uow.apply(transition):  # False: delivered already
                self._metrics.recorded(transition.fulfillment.status)
                _log_recorded(transition.fulfillment, self._clock())

    def _in_order_trace(self, fulfillment: Fulfillment, work: str) -> AbstractContextManager[object]:
        """Where work on fulfillment's order runs: in the current span when there is one (the order's record
        being processed), else (the retry scheduler) in a new span `fulfillment <work>`, a child of the trace the
        order was picked up in, so that the order's later attempts and events stay in its trace."""
        if trace.get_current_span().get_span_context().is_valid:
            return contextlib.nullcontext()
        return self._tracer.start_as_current_span(
            f"fulfillment {work}",
            context=restore(fulfillment.trace_context) or Context(),
            attributes={"order.id": str(fulfillment.order_id)},
        )

    def _provider_span(self, operation: str, order_id: uuid.UUID) -> AbstractContextManager[Span]:
        """The current span of one provider call (kind CLIENT, a child of the order's processing span): named
        `shipping-provider <operation>`; a failure or timeout ends it as an error with the exception recorded."""
        return self._tracer.start_as_current_span(
            f"shipping-provider {operation}",
            kind=SpanKind.CLIENT,
            attributes={"peer.service": "shipping-provider", "order.id": str(order_id)},
        )

    async def _record(
        self, order_id: uuid.UUID, change: Callable[[Fulfillment], Transition], *, retry: bool = False
    ) -> tuple[Fulfillment | None, bool]:
        """Record change of the order's fulfillment as stored now (UnitOfWork.decide): an outcome, a retry
        scheduled (retry: a failed attempt, counted and logged as a scheduled retry when the order stays
        Pending), the start of a call, a wait. Nothing when the order moved on meanwhile (another worker recorded
        its outcome, a cancellation won). Returns the fulfillment as stored after, and whether change was
        recorded."""
        stored, recorded = await self._uow.decide(order_id, lambda f: None if f is None else change(f))
        if recorded and stored is not None:
            status = stored.status
            if status is Status.Shipped:
                self.shipped += 1
            elif status is Status.Failed:
                self.failed += 1
            if status is not Status.Pending or retry:
                self._metrics.recorded(status)
                _log_recorded(stored, self._clock())
        return stored, recorded


def _log_recorded(fulfillment: Fulfillment, now: datetime) -> None:
    """The one INFO line of a recorded state change (the order's id is bound by the caller)."""
    status = fulfillment.status
    if status is Status.Shipped:
        fields = {"trackingNumber": fulfillment.tracking_number, "carrier": fulfillment.carrier}
        log.info("order shipped", extra={"status": status.value, "attempts": fulfillment.attempts, **fields})
        if fulfillment.cancel_refused is not None:  # a cancellation processed during the call that shipped it
            log.info("cancellation refused", extra={"status": status.value, "reason": fulfillment.cancel_refused})
    elif status is Status.Failed:
        log.info("order failed", extra={"status": status.value, "reason": fulfillment.failure_reason})
    elif status is Status.Delivered:
        log.info("order delivered", extra={"status": status.value})
    elif status is Status.Cancelled:
        log.info("order cancelled", extra={"status": status.value, "attempts": fulfillment.attempts})
    else:  # still Pending after a failed attempt: its next call is scheduled
        due = fulfillment.next_attempt_at
        log.info(
            "retry scheduled",
            extra={
                "status": status.value,
                "attempts": fulfillment.attempts,
                "reason": fulfillment.failure_reason,
                "retryInSeconds": round((due - now).total_seconds(), 3) if due else None,
            },
        )


def _check_shipment_recorded(shipment: Shipment, stored: Fulfillment | None, recorded: bool) -> None:
    """Say so when a shipment the provider made for the order was not recorded because the order moved on
    meanwhile: at DEBUG when another worker recorded it shipped already, else (the order is recorded Failed or
    Cancelled while the provider has shipped it) as a WARNING, since nothing else would tell."""
    if recorded:
        return
    status = stored.status.value if stored is not None else None
    fields = {"status": status, "trackingNumber": shipment.tracking_number, "carrier": shipment.carrier}
    if stored is not None and stored.status in (Status.Shipped, Status.Delivered):
        log.debug("shipment recorded already", extra=fields)
    else:
        log.warning("the provider shipped the order, but the order is recorded as %s", status, extra=fields)


def _log_cancellation(fulfillment: Fulfillment) -> None:
    """The one INFO line of a recorded OrderCancelled (the order's id is bound by the caller): cancelled, refused
    (with why), or recorded for the running provider call's outcome to decide."""
    status = fulfillment.status
    if status is Status.Cancelled:
        log.info("order cancelled", extra={"status": status.value, "attempts": fulfillment.attempts})
    elif fulfillment.cancel_refused is not None:
        log.info("cancellation refused", extra={"status": status.value, "reason": fulfillment.cancel_refused})
    else:
        log.info("cancellation awaits the provider call", extra={"status": status.value})
