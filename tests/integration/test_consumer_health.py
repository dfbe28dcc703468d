"""The fulfillment health tells the truth about the consumer: lag from the broker, and not "ok" while stuck."""

from __future__ import annotations

import time

import pytest

from harness.orders import post_orders, wait_all_terminal
from harness.system import running_system
from harness.waiting import wait_until

pytestmark = pytest.mark.integration

STALL_SECONDS = 3.0


@pytest.fixture
def watched_system(stack, tmp_path):
    with running_system(
        stack,
        tmp_path,
        PROVIDER_FAILURE_RATE="0",
        PROVIDER_CONTROL_ENABLED="true",
        PROVIDER_TIMEOUT_SECONDS="60",  # a provider call that hangs holds its order, and the commit behind it
        CONSUMER_STALL_SECONDS=str(STALL_SECONDS),
    ) as system:
        yield system


def test_a_stuck_consumer_is_reported_with_its_lag_and_recovers(watched_system):
    system = watched_system
    warm = post_orders(system.orders.url, 3)
    wait_all_terminal(system.orders.url, warm, timeout=60)
    healthy = wait_until(
        lambda: (h := system.fulfillment_health())["status"] == "ok" and h["consumer"]["lagTotal"] == 0 and h,
        30,
        message="a healthy, caught-up consumer",
    )
    assert healthy["consumerLag"] == 0 and healthy["consumer"]["assignedPartitions"] == [0]
    assert healthy["reasons"] == []

    # The provider hangs: nothing finishes, nothing is committed.
    system.set_provider(minLatencyMs=15_000, maxLatencyMs=15_000)
    stuck = post_orders(system.orders.url, 5)
    posted = time.monotonic()
    report = wait_until(
        lambda: (h := system.fulfillment_health())["status"] != "ok" and h,
        STALL_SECONDS + 6,  # the stall time, plus a reading's age and the time to fetch the orders
        message="health to stop answering ok",
    )
    noticed = time.monotonic() - posted
    assert report["status"] == "degraded"
    consumer = report["consumer"]
    assert consumer["stalled"] and consumer["stalledPartitions"] == [0]
    assert consumer["lag"] == {"0": 5} and consumer["lagTotal"] == 5 and report["consumerLag"] == 5
    assert consumer["lastProgressAgeSeconds"] > STALL_SECONDS
    assert any("stalled" in reason for reason in report["reasons"]), report["reasons"]
    print(f"stall reported {noticed:.1f} s after the orders were posted (stall time {STALL_SECONDS:g} s)")

    # The hanging calls answer (15 s after they began); progress resumes.
    system.set_provider(minLatencyMs=100, maxLatencyMs=100)
    recovered = wait_until(
        lambda: (h := system.fulfillment_health())["status"] == "ok" and h,
        40,
        message="health to answer ok again",
    )
    assert recovered["consumer"]["lagTotal"] == 0 and not recovered["consumer"]["stalled"]
    assert recovered["reasons"] == []
    final = wait_all_terminal(system.orders.url, stuck, timeout=30)
    assert {o["status"] for o in final.values()} == {"Fulfilled"}
