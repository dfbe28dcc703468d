"""An order's fulfillment stays in the trace its OrderCreated record carried: the provider calls are child spans
of the record's processing, and an attempt the retry scheduler makes later (outside any span) continues the
trace the order was picked up in, so the Shipped event it writes carries that trace too."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from opentelemetry import trace
from sqlalchemy import select

from fulfillment_service import store
from fulfillment_service.resilience import BackoffPolicy, CircuitBreaker
from fulfillment_service.shipping import ProviderError
from fulfillment_service.unit_of_work import SqlUnitOfWork
from fulfillment_service.use_cases import Fulfiller
from observability.trace_context import from_headers
from persistence.engine import make_engine
from persistence.group_commit import GroupCommitter
from persistence.migrations import upgrade_to_head
from tests.unit.fake_shipping import FakeShippingProvider
from tests.unit.manual_clock import ManualClock
from tests.unit.span_recorder import SpanRecorder
from tests.unit.test_fulfillment_use_cases import MIGRATIONS, T0, TOPIC, order_created

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_retry_made_by_the_scheduler_continues_the_trace_the_order_was_picked_up_in(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/fulfillment.db")
    upgrade_to_head(engine, MIGRATIONS)
    recorder = SpanRecorder()
    event = order_created()

    async def scenario() -> None:
        committer = GroupCommitter(engine, "test-fulfillment-db")
        clock = ManualClock(T0)
        uow = SqlUnitOfWork(committer, TOPIC, clock=clock)
        retry = BackoffPolicy(3, deadline_seconds=300, initial=1, maximum=1)
        provider = FakeShippingProvider(ProviderError("503 Unavailable"))  # then it ships
        fulfiller = Fulfiller(uow, provider, CircuitBreaker(5, 60), retry, 5.0, 0.0, clock, tracer=recorder.tracer)
        incoming = from_headers([("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01")])
        try:
            with recorder.tracer.start_as_current_span("order-events process", context=incoming):
                await fulfiller.handle_order_created(event)  # picked up; the first call fails
            clock.advance(timedelta(seconds=1))
            assert trace.get_current_span().get_span_context().is_valid is False  # as on the scheduler's task
            (due,) = await uow.claim_due_for_retry(fulfiller.call_lease, 10, set())
            await fulfiller.attempt(due)
        finally:
            await committer.stop()

    asyncio.run(scenario())

    (processing,) = recorder.named("order-events process")
    (retry_span,) = recorder.named("fulfillment attempt")
    first_call, second_call = recorder.named("shipping-provider create_shipment")
    (lookup,) = recorder.named("shipping-provider find_shipment")
    assert {f"{s.context.trace_id:032x}" for s in recorder.finished()} == {TRACE_ID}
    assert first_call.parent.span_id == processing.context.span_id
    assert first_call.status.status_code.name == "ERROR" and first_call.kind.name == "CLIENT"
    assert retry_span.parent.span_id == processing.context.span_id  # the context stored at pick-up
    assert lookup.parent.span_id == retry_span.context.span_id
    assert second_call.parent.span_id == retry_span.context.span_id
    assert second_call.status.status_code.name == "UNSET"

    with engine.connect() as conn:
        rows = conn.execute(select(store.outbox.c.payload, store.outbox.c.trace_context).order_by("id")).all()
    parents = [json.loads(row.trace_context)["traceparent"].split("-")[1:3] for row in rows]
    assert parents == [  # Pending, written while processing; Shipped, written by the retry
        [TRACE_ID, f"{processing.context.span_id:016x}"],
        [TRACE_ID, f"{retry_span.context.span_id:016x}"],
    ]
    engine.dispose()
