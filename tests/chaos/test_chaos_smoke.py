"""Chaos smoke run: every scenario with short faults at a low rate, each on a stack of its own.

The full-length runs are `make chaos`; these keep the same checks (no loss, no duplicate, no failed
POST where the fault is outside the Order Service, drained in time) at a size `make test` can afford.
The first tests show that the reconciliation does count what it is meant to catch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaos.faults import SCENARIOS
from chaos.health_watch import STUCK_AFTER_S, HealthSample, stuck_while_ok_seconds
from chaos.profile import SMOKE
from chaos.report import COLUMNS, row
from chaos.scenario import run_scenario
from chaos.stacks import StackPool
from harness.load import Accepted
from harness.reconcile import FulfillmentEventScan, OrderEventScan, judge


def _accepted(*order_ids: str, at: float = 100.0) -> dict[str, Accepted]:
    return {i: Accepted(f"key-{i}", i, at, at, 1, False) for i in order_ids}


def _order(status: str, finished_at: float = 100.0) -> dict[str, Any]:
    return {"status": status, "updatedAt": datetime.fromtimestamp(finished_at, UTC).isoformat()}


def _judge(**overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "accepted": _accepted("a", "b"),
        "orders": {"a": _order("Fulfilled"), "b": _order("Failed")},
        "created": OrderEventScan(created_ms={"a": 100_000, "b": 100_000}),
        "fulfilled": FulfillmentEventScan(picked_up_ms={"a": 100_500, "b": 101_000}),
        "calls": {"a": 1},
        "fault_end": None,
        "drained": True,
        "outbox_left": {},
    }
    return judge(**{**arguments, **overrides})


def test_a_clean_run_has_nothing_lost_or_duplicated() -> None:
    verdict = _judge()
    assert (verdict.lost, verdict.duplicated, verdict.missing_pickup) == (0, 0, [])
    assert verdict.max_pickup_delay_s == 1.0


def test_orders_never_terminal_or_never_published_are_lost() -> None:
    verdict = _judge(
        orders={"a": _order("Processing"), "b": _order("Failed")},
        created=OrderEventScan(created_ms={"a": 100_000}),
    )
    assert verdict.lost == 2
    assert (verdict.lost_not_terminal, verdict.lost_not_published) == (["a"], ["b"])
    assert verdict.drain_s is None


def test_a_second_provider_call_or_tracking_number_is_a_duplicate() -> None:
    fulfilled = FulfillmentEventScan(picked_up_ms={"a": 100_500, "b": 101_000})
    fulfilled.tracking["b"] |= {"SHIP-1", "SHIP-2"}
    verdict = _judge(calls={"a": 2}, fulfilled=fulfilled)
    assert verdict.duplicated == 2
    assert verdict.duplicated_calls == {"a": 2}
    assert verdict.duplicated_tracking == {"b": ["SHIP-1", "SHIP-2"]}


def test_missing_pickups_orders_nobody_announced_and_drain_time() -> None:
    accepted = {**_accepted("a", at=100.0), **_accepted("b", at=200.0)}
    verdict = _judge(
        accepted=accepted,
        orders={"a": _order("Fulfilled", 130.0), "b": _order("Fulfilled", 205.0), "x": _order("Pending")},
        fulfilled=FulfillmentEventScan(picked_up_ms={"a": 100_500}),
        fault_end=110.0,
    )
    assert verdict.missing_pickup == ["b"]
    assert verdict.unconfirmed_orders == 1
    # Only the backlog the fault left counts: order a, accepted before the fault ended.
    assert verdict.drain_s == pytest.approx(20.0)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPool]:
    pool = StackPool(tmp_path_factory.mktemp("chaos-stacks"))
    try:
        yield pool
    finally:
        pool.close()


def test_stuck_while_ok_counts_only_time_health_said_ok_about_an_order_stuck_past_the_limit() -> None:
    accepted = {**_accepted("a", at=100.0), **_accepted("b", at=100.0)}
    samples = [HealthSample(100.0 + t, True, t not in (50, 51)) for t in range(0, 60)]
    # a finished at once; b only at 160: stuck from 135 on, health said ok except at 150 and 151.
    stuck = stuck_while_ok_seconds(samples, accepted, {"a": 100.5, "b": 160.0}, stuck_after_s=35)
    assert stuck == 23.0  # 135..159 is 25 samples of 1 s, two of them not ok
    assert stuck_while_ok_seconds(samples, accepted, {"a": 100.5, "b": 134.0}, stuck_after_s=35) == 0
    assert stuck_while_ok_seconds([HealthSample(140.0, False, True)], accepted, {"a": 100.5}, stuck_after_s=35) == 0
    # By default an order is stuck once the Order Service would call it stale (60 s) and readiness had 5 s to say so.
    assert STUCK_AFTER_S == 65.0
    assert stuck_while_ok_seconds(samples, accepted, {"a": 100.5, "b": 160.0}) == 0


@pytest.mark.integration
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_chaos_smoke(name: str, tmp_path: Path, stacks: StackPool, request: pytest.FixtureRequest) -> None:
    # Start the next scenario's stack while this one drains, if another smoke scenario runs after it.
    smoke_items = [item for item in request.session.items if item.originalname == "test_chaos_smoke"]
    prepare_next = bool(smoke_items) and smoke_items[-1] is not request.node
    result = run_scenario(SCENARIOS[name], SMOKE, workdir=tmp_path, stacks=stacks, prepare_next=prepare_next)
    print(" | ".join(f"{column}: {value}" for column, value in zip(COLUMNS, row(result), strict=True)))
    failed = "\n".join(f"- {c.name}: {c.detail}" for c in result.failed_checks())
    context = f"{name} failed:\n{failed}\n{result.error or ''}\nlogs and data: {result.workdir}"
    assert result.reconciliation, context
    assert result.reconciliation["lost"] == 0, context
    assert result.reconciliation["duplicated"] == 0, context
    assert result.passed, context
